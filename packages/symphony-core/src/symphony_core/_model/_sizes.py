"""How large a manifest may be: every size limit of the manifest and its permission requests, in one place.

A consent summary is read by a person: a request with thousands of paths or a reason the length of a
page hides what matters in it. The limits are far above what a real extension needs, and the models'
JSON Schema carries them, so an author meets them in `symphony validate` before anyone else does.
"""

from __future__ import annotations

MAX_ID_LENGTH = 128
"""An extension id, `publisher.name` (so the publisher too)."""
MAX_NAME_LENGTH = 80
"""The display name."""
MAX_SUMMARY_LENGTH = 300
"""The one-sentence summary."""
MAX_PERMISSIONS = 64
"""Permission requests in one manifest."""
MAX_REASON_LENGTH = 500
"""The reason of one request."""
MAX_SCOPES = 64
"""Paths, hosts, commands or variable names in one request."""
MAX_SCOPE_LENGTH = 4096
"""One path, host, command or variable name (a path as long as Linux's ``PATH_MAX``)."""
MAX_MANIFEST_BYTES = 4 * 2**20
"""The manifest file itself: a discovery never reads more of one (a real manifest is a few kB)."""
