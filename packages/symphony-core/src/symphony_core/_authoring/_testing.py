"""Symphony's pytest plugin: run an installed extension in a real host with a home of its own.

Registered through the ``pytest11`` entry point as ``symphony``, so it loads in every pytest run where
``symphony-sdk-core`` is installed (``-p no:symphony`` turns it off). It therefore imports only the
standard library and pytest; the host is imported when a test first asks for it. It adds fixtures, an
option and a marker, and changes nothing else: a test that asks for none of the fixtures runs exactly as
without the plugin.

Fixtures:

- ``symphony_home``: a fresh folder set as ``SYMPHONY_HOME`` for the test.
- ``symphony_host``: a `Harness` around a real ``Host`` in that home. It grants permissions, sets
  config, starts and calls extensions, and records every access the guard denied, for
  `Harness.assert_within_permissions`.

Where the extension runs: in the test's own process under the in-process guard by default (fast, and
the guard's denials are recorded), or in kernel-restricted workers as a host isolates it, for a test
marked ``@pytest.mark.symphony_isolation("isolated")`` or for every test of a run with
``--symphony-isolation=isolated`` (the marker wins over the option). Any value of `Host`'s
``isolation`` is accepted.

Extension authors reach these through their kit's ``testing`` module (``symphony_instruments.testing``,
``symphony_operators.testing``), which adds helpers for their kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from symphony_core._model._public import public

if TYPE_CHECKING:
    from symphony_core._model._hooks import PermissionEvent
    from symphony_core._runtime._host import ExtensionInfo, Host, Isolation
    from symphony_core._security._guard import Recorder

ACTOR = "pytest"
MARKER = "symphony_isolation"


@public
class Harness:
    """A real host in a temporary home, with the steps a test of an extension needs.

    The host finds extensions the way any host does, through the entry points of the distributions
    installed in this environment: install the project under test first (``pip install -e .``).

    ``isolation`` is the host's. With ``"guard"``, the default, extensions run in this process under
    the in-process guard, which sees only what Python reports (it is not a sandbox); every access it
    denies is recorded, even when the extension catches the error. With ``"isolated"`` they run in
    kernel-restricted workers, as a host runs them by default: the kernel refuses what is not granted
    (the extension gets a ``PermissionError``, which no denial records), `config` returns the config as
    data, and `learning` is refused.
    """

    def __init__(self, home: Path, *, isolation: Isolation = "guard") -> None:
        self.home = home
        self.isolation: Isolation = isolation
        self._host: Host | None = None
        self._events: list[PermissionEvent] = []

    @property
    def host(self) -> Host:
        """The host, created on first use (with the harness's ``isolation``, ``actor="pytest"``)."""
        if self._host is None:
            from symphony_core._model._hooks import hookimpl
            from symphony_core._runtime._host import Host

            events = self._events

            class _Observer:
                @hookimpl
                def symphony_permission_event(self, event: PermissionEvent) -> None:
                    events.append(event)

            self._host = Host(self.home, actor=ACTOR, isolation=self.isolation)
            self._host.hooks.register(_Observer())
        return self._host

    def extensions(self) -> list[ExtensionInfo]:
        """Every installed extension the host found, failed ones included (nothing is imported)."""
        return self.host.discover()

    def inspect(self, extension: str) -> ExtensionInfo:
        """One installed extension as the host sees it; fails the test if the host does not find it."""
        from symphony_core._model._errors import ExtensionNotFound

        try:
            return self.host.inspect(extension)
        except ExtensionNotFound:
            pass  # failed outside the handler, so the report shows one error, not two chained ones
        found = ", ".join(info.id for info in self.host.extensions()) or "none"
        pytest.fail(
            f"no installed extension has the id {extension!r} (installed: {found}); install the project "
            "under test into this environment first, e.g. `pip install -e .`",
            pytrace=False,
        )

    def grant(self, extension: str, *types: str) -> None:
        """Grant what the extension requests (only the given types, e.g. ``"fs.read"``, if any)."""
        self.inspect(extension)
        self.host.grant(extension, types, actor=ACTOR)

    def deny(self, extension: str) -> None:
        """Withdraw every grant: the host then refuses to activate it (``ConsentRequired``) if it asks for any."""
        self.inspect(extension)
        self.host.revoke(extension, actor=ACTOR)

    def configure(self, extension: str, **values: Any) -> None:
        """Set config values as host overrides (``batching={"max_batch_size": 8}`` sets a whole table).

        Each value is validated against the extension's config model at once (``ConfigError`` names the
        field); an active extension sees the new values after `restart`.
        """
        self.inspect(extension)
        for key, value in values.items():
            self.host.set_config(extension, key, value if isinstance(value, str) else json.dumps(value))

    def config(self, extension: str) -> Any:
        """The extension's resolved config model instance (None if its manifest names no config); for
        an isolated extension, its data, secrets masked."""
        resolved = self.host.config(extension)
        return None if resolved is None else resolved.config

    def start(self, extension: str, *, grant: bool = True, **config: Any) -> Any:
        """Load, configure and activate the extension; return the running extension object.

        ``grant=True`` consents to everything its manifest requests first; keyword arguments are set as
        config values (see `configure`).
        """
        info = self.inspect(extension)
        if info.problem is not None:
            hint = f" ({info.problem.hint})" if info.problem.hint else ""
            pytest.fail(f"{extension} cannot be used: {info.problem.message}{hint}", pytrace=False)
        if config:
            self.configure(extension, **config)
        if grant and info.manifest and info.manifest.get("permissions"):
            self.host.grant(extension, actor=ACTOR)
        return self.host.start(extension)

    def restart(self, extension: str) -> Any:
        """Stop the extension and start it again (with the config and grants as they are now)."""
        self.host.deactivate(extension)
        return self.host.start(extension)

    def stop(self, extension: str) -> None:
        """Deactivate the extension."""
        self.host.deactivate(extension)

    def call(self, extension: str, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call a public method of the active extension through the host (a coroutine is run to its end)."""
        return self.host.call(extension, method, *args, **kwargs)

    def data_dir(self, extension: str) -> Path:
        """The extension's own data folder (``{data}`` in its permissions), created if missing."""
        folder = self.host.home.data_dir(self.inspect(extension).id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def denials(self, extension: str | None = None) -> list[PermissionEvent]:
        """Every access the guard refused so far (of one extension, if given), in order."""
        from symphony_core._model._kinds import canonical_id

        wanted = None if extension is None else canonical_id(extension)
        return [
            event
            for event in self._events
            if event.action == "denied" and (wanted is None or canonical_id(event.extension) == wanted)
        ]

    def assert_within_permissions(self, extension: str | None = None) -> None:
        """Fail the test if the guard refused the extension anything, naming each access and what to ask for.

        Only what Python reports is seen: native code (polars, onnxruntime, ctypes) is not.
        """
        denied = self.denials(extension)
        if denied:
            lines = "\n".join(f"  - {event.permission} {event.resource}" for event in denied)
            who = extension or ", ".join(sorted({event.extension for event in denied}))
            raise AssertionError(
                f"{who} used what it was not granted:\n{lines}\n"
                "request it in symphony.toml ([[permissions]] with a reason), or stop using it"
            )

    @contextmanager
    def learning(self, extension: str) -> Iterator[Recorder]:
        """Run the body with the extension allowed everything, recording what it uses.

        Start and call the extension inside; ``recorder.proposal()`` is then the ``[[permissions]]`` its
        manifest would need (``recorder.toml()`` as text), from what the guard saw: Python's own file,
        socket and subprocess use, not native code's. It runs the extension in this process, so a
        harness with ``isolation="isolated"`` refuses it.
        """
        self.inspect(extension)
        with self.host.learning(extension) as recorder:
            yield recorder

    def close(self) -> None:
        """Deactivate every active extension and close the host."""
        if self._host is not None:
            self._host.close()
            self._host = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--symphony-isolation",
        default="guard",
        metavar="ISOLATION",
        help="where the symphony_host fixture runs extensions: in the test's process under the guard "
        "(guard, the default) or in kernel-restricted workers (isolated); a test's "
        f"@pytest.mark.{MARKER}(...) wins",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(isolation): where the symphony_host fixture runs extensions: 'guard' (in this "
        "process, the default) or 'isolated' (kernel-restricted workers); any isolation of Host",
    )


@pytest.fixture
def symphony_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty Symphony home, set as ``SYMPHONY_HOME`` for the test."""
    home = tmp_path_factory.mktemp("symphony-home")
    monkeypatch.setenv("SYMPHONY_HOME", str(home))
    return home


@pytest.fixture
def symphony_host(request: pytest.FixtureRequest, symphony_home: Path) -> Iterator[Harness]:
    """A `Harness`: a real host in ``symphony_home`` that grants, configures, starts and calls extensions.

    In the test's process under the guard, unless the test is marked
    ``@pytest.mark.symphony_isolation("isolated")`` or the run has ``--symphony-isolation=isolated``.
    """
    harness = Harness(symphony_home, isolation=_isolation(request))
    try:
        yield harness
    finally:
        harness.close()


def _isolation(request: pytest.FixtureRequest) -> Isolation:
    """The test's marker's isolation, else the run's ``--symphony-isolation``."""
    from symphony_core._runtime._host import ISOLATION

    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        chosen, where = request.config.getoption("--symphony-isolation"), "--symphony-isolation"
    else:
        chosen = marker.args[0] if len(marker.args) == 1 and not marker.kwargs else None
        where = f"@pytest.mark.{MARKER}"
    if chosen not in ISOLATION:
        pytest.fail(f"{where} takes one of {', '.join(ISOLATION)}, e.g. {MARKER}('isolated')", pytrace=False)
    return chosen  # type: ignore[no-any-return]
