"""The config of ``acme-x.y``: the API key its owner sets through the environment."""

from __future__ import annotations

from symphony_core import Config


class Settings(Config):
    api_key: str = ""
