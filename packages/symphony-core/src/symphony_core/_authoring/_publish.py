"""``symphony publish``: an extension project built, checked, previewed as a marketplace lists it, and
uploaded to the package index its author names.

Each step is a function the command calls in order, printing between them:

- `read_project` refuses a folder that is not an extension project before anything is built;
- `build` runs the ``build`` frontend (``python -m build``: an sdist, then the wheel built from it, each
  in an isolated environment) into a temporary folder, and moves what it made into the dist folder, so
  only the files of this run are ever uploaded;
- `check` is ``symphony validate`` on the built wheel;
- `preview` reads the wheel as ``symphony catalog build`` reads a published one (`read_wheel`, running
  nothing) and returns the listings a marketplace would show;
- `upload` runs twine in a separate Python (the only place that sees the password, on its standard input)
  and turns what the index answered into one `UploadRefused` naming the file, the index and what to do.

``build`` and ``twine`` come with the ``symphony-sdk-core[publish]`` extra; `require_tools` says so when
they are missing.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from symphony_core._model._errors import SymphonyError
from symphony_core._model._kinds import KIND_BY_GROUP
from symphony_core._runtime._install import read_wheel
from symphony_core._runtime._listings import ListedFile, Listings
from symphony_core._runtime._publish import _listings, _metadata, _sha256

from ._validate import BadTarget, Report, validate
from ._validate._sources import Project

EXTRA = "symphony-sdk-core[publish]"
BUILD_TIMEOUT = 900.0
UPLOAD_TIMEOUT = 600.0
OUTPUT_LINES = 40
"""How many of the build's last lines a `BuildFailed` keeps."""


class PublishError(SymphonyError):
    """Publishing stopped before anything reached the index (unless ``uploaded`` names files that did)."""

    data_fields: ClassVar[tuple[str, ...]] = ("uploaded",)

    def __init__(self, message: str, *, uploaded: Sequence[str] = (), **kwargs: Any) -> None:
        self.uploaded = list(uploaded)
        super().__init__(message, **kwargs)


class NotAnExtension(PublishError):
    """The folder given is not the project of a Symphony extension (no pyproject.toml, no entry point)."""


class BuildFailed(PublishError):
    """The build frontend failed; ``output`` holds the last lines it printed."""

    data_fields: ClassVar[tuple[str, ...]] = ("output",)

    def __init__(self, message: str, *, output: Sequence[str] = (), **kwargs: Any) -> None:
        self.output = list(output)
        super().__init__(message, **kwargs)


class UploadRefused(PublishError):
    """The index did not take a file: it refused it (``status``), or could not be reached (``status`` None)."""

    data_fields: ClassVar[tuple[str, ...]] = ("file", "index", "status")

    def __init__(
        self, message: str, *, file: str, index: str, status: int | None = None, **kwargs: Any
    ) -> None:
        self.file = file
        self.index = index
        self.status = status
        super().__init__(message, **kwargs)


@dataclass(frozen=True)
class Built:
    """What one build made, in the dist folder: the wheel hosts install, and the sdist beside it."""

    wheel: Path
    sdist: Path | None

    @property
    def files(self) -> tuple[Path, ...]:
        """The files to upload, the wheel first."""
        return (self.wheel,) if self.sdist is None else (self.wheel, self.sdist)

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"filename": path.name, "path": str(path), "sha256": _sha256(path), "size": path.stat().st_size}
            for path in self.files
        ]


def read_project(folder: Path) -> tuple[str | None, str | None]:
    """The distribution name and version (None when dynamic) of the extension project in ``folder``."""
    if not (folder / "pyproject.toml").is_file():
        raise NotAnExtension(
            f"{folder} is not a project folder: it has no pyproject.toml",
            hint="give the folder of the extension's project (where its pyproject.toml is), "
            "or make one with `symphony new`",
        )
    try:
        project = Project(folder, Report(str(folder), "project"))
    except BadTarget as exc:
        raise NotAnExtension(exc.summary, hint=exc.hint) from None
    if not any(point.group in KIND_BY_GROUP for point in project.entry_points):
        groups = ", ".join(f'[project.entry-points."{group}"]' for group in KIND_BY_GROUP)
        raise NotAnExtension(
            f"{folder / 'pyproject.toml'} declares no Symphony entry point, so {project.distribution or 'it'} "
            "is not an extension and no host would find one in it",
            hint=f'register the extension under one of {groups}: "publisher.name" = "package:Class"; '
            "publish libraries with build and twine",
        )
    return project.distribution, project.version


def require_tools(*, upload: bool) -> None:
    """Refuse to start when ``build`` (or, to upload, ``twine``) is not installed in this Python."""
    needed = ("build", "twine") if upload else ("build",)
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise PublishError(
            f"publishing needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
            f"installed in this Python ({sys.executable})",
            hint=f"python -m pip install '{EXTRA}'",
        )


def build(folder: Path, dist: Path) -> Built:
    """Build ``folder``'s sdist and wheel (``python -m build``) and move them into ``dist``."""
    with tempfile.TemporaryDirectory(prefix="symphony-publish-") as staging:
        command = [sys.executable, "-m", "build", "--outdir", staging, str(folder)]
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BuildFailed(
                f"building {folder} took longer than {BUILD_TIMEOUT:g} s; nothing was uploaded",
                hint=f"build it yourself to see where it stops: python -m build {folder}",
            ) from None
        if done.returncode != 0:
            raise BuildFailed(
                f"building {folder} failed (python -m build exited with {done.returncode}); nothing was uploaded",
                output=done.stdout.splitlines()[-OUTPUT_LINES:],
                hint="fix what the build's output above names, then publish again",
            )
        made = sorted(Path(staging).iterdir())
        wheels = [path for path in made if path.suffix == ".whl"]
        sdists = [path for path in made if path.name.endswith(".tar.gz")]
        if len(wheels) != 1:
            raise BuildFailed(
                f"building {folder} made {len(wheels)} wheels ({', '.join(p.name for p in wheels) or 'none'}); "
                "publish expects one",
                hint="build and upload them yourself (python -m build, then symphony validate and twine upload)",
            )
        dist.mkdir(parents=True, exist_ok=True)
        moved = {path.name: Path(shutil.copy2(path, dist / path.name)) for path in (*wheels, *sdists)}
    return Built(moved[wheels[0].name], moved[sdists[0].name] if sdists else None)


def check(wheel: Path) -> Report:
    """What ``symphony validate`` finds in the built wheel."""
    return validate(wheel)


def preview(wheel: Path, index: str) -> Listings:
    """What a marketplace built from ``index`` would list for ``wheel``: one listing per extension, read
    as ``symphony catalog build`` reads a published wheel."""
    read = read_wheel(wheel)
    file = ListedFile(wheel.name, read.sha256, wheel.stat().st_size)
    listings, _ = _listings([(read, _metadata(wheel), file)], index)
    return listings


# Runs in a separate Python: twine uploads each file in turn; what happened is one JSON line on the
# descriptor the parent reads, while everything twine prints goes to standard error.
UPLOADER = r"""
import json, os, sys

result = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
request = json.load(sys.stdin)
answer = {"uploaded": []}
try:
    import requests
    from twine.commands.upload import upload
    from twine.exceptions import NonInteractive, TwineException
    from twine.settings import Settings

    settings = Settings(
        repository_url=request["index"],
        username=request["username"],
        password=request["password"],
        non_interactive=True,
        disable_progress_bar=True,
    )
    for path in request["files"]:
        answer["file"] = os.path.basename(path)
        try:
            upload(settings, [path])
        except requests.HTTPError as exc:
            response = exc.response
            answer["refused"] = {
                "status": response.status_code,
                "reason": response.reason or "",
                "text": response.text[:20000],
                "type": response.headers.get("Content-Type", ""),
            }
            break
        except requests.ConnectionError as exc:
            answer["unreachable"] = str(exc)
            break
        except NonInteractive as exc:
            answer["credentials"] = str(exc)
            break
        except TwineException as exc:
            answer["twine"] = f"{type(exc).__name__}: {exc}"
            break
        answer["uploaded"].append(answer.pop("file"))
except BaseException as exc:
    answer["crashed"] = f"{type(exc).__name__}: {exc}"
result.write(json.dumps(answer) + "\n")
result.flush()
"""


def upload(
    files: Sequence[Path], index: str, *, username: str | None = None, password: str | None = None
) -> list[str]:
    """Upload ``files`` in order to the index at ``index`` (its upload URL) with twine; returns their names.

    The first file the index does not take stops the upload: an `UploadRefused` says which, why, what to
    do, and which files went up before it (``uploaded``)."""
    request = {
        "index": index,
        "files": [str(path) for path in files],
        "username": username,
        "password": password,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", UPLOADER],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=UPLOAD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UploadRefused(
            f"uploading to {index} took longer than {UPLOAD_TIMEOUT:g} s",
            file=files[0].name,
            index=index,
            hint="check the index's state, then publish again; files it already has are refused, not replaced",
        ) from None
    try:
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise PublishError(
            f"twine stopped without saying what it uploaded to {index} (status {done.returncode}): {tail}",
            hint=f"reinstall twine (python -m pip install '{EXTRA}'), then publish again",
        ) from None
    uploaded: list[str] = answer["uploaded"]
    if "file" not in answer and "crashed" not in answer:
        return uploaded
    raise _refusal(answer, index, uploaded)


def _refusal(answer: dict[str, Any], index: str, uploaded: list[str]) -> PublishError:
    """One clear error for what stopped the upload."""
    file = answer.get("file", "")
    went_up = f" ({', '.join(uploaded)} went up before it)" if uploaded else ""
    if "crashed" in answer:
        return PublishError(
            f"twine failed before uploading to {index}: {answer['crashed']}",
            uploaded=uploaded,
            hint=f"reinstall twine (python -m pip install '{EXTRA}'), then publish again",
        )
    if "unreachable" in answer:
        return UploadRefused(
            f"cannot reach the package index {index} to upload {file}: {_reason(answer['unreachable'])}",
            file=file,
            index=index,
            uploaded=uploaded,
            hint="check the address (its upload URL, e.g. https://upload.pypi.org/legacy/) and that the "
            "index is up, then publish again",
        )
    if "credentials" in answer:
        return UploadRefused(
            f"no credentials to upload {file} to {index}{went_up}",
            file=file,
            index=index,
            uploaded=uploaded,
            hint="pass --username and --password, or set TWINE_USERNAME and TWINE_PASSWORD "
            "(for PyPI: __token__ and an API token)",
        )
    if "twine" in answer:
        return UploadRefused(
            f"twine would not upload {file} to {index}{went_up}: {answer['twine']}",
            file=file,
            index=index,
            uploaded=uploaded,
            hint="fix what twine names, then publish again",
        )
    refused = answer["refused"]
    status = int(refused["status"])
    said = _said(refused)
    head = f"the package index {index} refused {file} ({status} {said}){went_up}"
    if status in (401, 403):
        hint = (
            "check the username and password (--username/--password or TWINE_USERNAME/TWINE_PASSWORD; "
            "for PyPI: __token__ and an API token allowed to upload this project)"
        )
    elif status == 409 or (status == 400 and "exist" in said.lower()):
        head = f"{file} is already on the package index {index}{went_up}; an index never replaces a file"
        hint = "raise the version in pyproject.toml, then publish again"
    elif status in (404, 405):
        hint = "give the index's upload URL (e.g. https://upload.pypi.org/legacy/, or a pypiserver's root /)"
    elif status == 413:
        hint = "the file is larger than the index takes: leave big data out of the wheel, or ask the index's operators"
    elif status >= 500:
        hint = "the index failed on its side: try again later; files it already has are refused, not replaced"
    else:
        hint = "fix what the index names in the metadata (pyproject.toml), then publish again"
    return UploadRefused(head, file=file, index=index, status=status, uploaded=uploaded, hint=hint)


def _said(refused: dict[str, Any]) -> str:
    """What the index answered, as one line: its reason phrase, then the text of its error page if that
    says more (PyPI puts its message in the reason; pypiserver in an HTML page)."""
    text = refused["text"]
    if "html" in refused["type"].lower() or text.lstrip().startswith("<"):
        block = re.search(r"<pre[^>]*>(.*?)</pre>", text, re.S | re.I)
        body = (
            block.group(1)
            if block
            else re.sub(r"<(style|script|head)\b.*?</\1>", " ", text, flags=re.S | re.I)
        )
        text = html.unescape(re.sub(r"<[^>]+>", " ", body))
    detail = " ".join(text.split())[:300]
    reason = " ".join(str(refused["reason"]).split()) or "no reason given"
    if not detail or detail.lower() in (reason.lower(), "none") or detail in reason:
        return reason
    return f"{reason}: {detail}"


def _reason(text: str) -> str:
    """The innermost cause of a requests connection error (``[Errno 111] Connection refused``)."""
    found = re.findall(r"\[Errno -?\d+\][^'\")]*", text)
    return found[-1].strip() if found else text[:200]
