"""The host API: discover, inspect, enable, load, activate, call and deactivate extensions.

Whatever an extension does (fail to import, raise, hang, lie in its manifest), only that extension
moves to ``failed`` with a reason; the host and every other extension go on.
"""

from __future__ import annotations

import functools
import logging
import operator
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import msgspec
import pluggy

from symphony_core._catalog._environments import discover_all
from symphony_core._catalog._records import Catalog, Problem, Record, contested, record_key
from symphony_core._model._errors import (
    CompatibilityError,
    ConfigError,
    ConflictError,
    ConsentRequired,
    ExtensionFailed,
    ExtensionNotFound,
    LifecycleError,
    SymphonyError,
    blamed,
)
from symphony_core._model._extension import Context, Extension
from symphony_core._model._hooks import PROJECT, HostHooks, LifecycleEvent, PermissionEvent
from symphony_core._model._kinds import canonical_id
from symphony_core._model._lifecycle import State, can_move
from symphony_core._model._public import public
from symphony_core._store._home import Home
from symphony_core._store._state import HostState, current_grant

from . import _interrupts
from ._executor import Executor, escaped
from ._tiers import InProcess, Tier, Workers, lift_hint

if TYPE_CHECKING:  # imported on first use: listing and starting most extensions need none of them
    import asyncio
    from concurrent.futures import Future

    from symphony_core._model._permissions import Permission
    from symphony_core._security._grants import Consent
    from symphony_core._security._guard import Policy, Recorder
    from symphony_core._security._sandbox._pool import Pool
    from symphony_core._store._config import Resolved

    from ._install import Installation, InstallPlan
    from ._listings import Listing, Listings

log = logging.getLogger("symphony.host")
logging.getLogger("symphony").addHandler(
    logging.NullHandler()
)  # the embedding application decides what shows

DEFAULT_IMPORT_BUDGET = 10.0
DEFAULT_ACTIVATE_BUDGET = 10.0
Isolation = Literal["auto", "isolated", "guard", "none"]
"""Where a `Host` runs extension code: ``"auto"`` (the default) in kernel-restricted workers, except the
extensions the policy file's ``[[trust]]`` list names, which run in the host's process under the
in-process guard; ``"isolated"`` every extension in workers; ``"guard"`` every extension in the host's
process under the guard (which is not a sandbox); ``"none"`` every extension in the host's process with
no guard at all, for code as trusted as the host's own (tests, benchmarks)."""
ISOLATION: tuple[Isolation, ...] = get_args(Isolation)
# The states in which an extension holds something that must be stopped: its code, a loop, workers.
_RUNNING = frozenset({State.LOADED, State.CONFIGURED, State.ACTIVE, State.DEACTIVATED})
# What starting an extension that discovery failed raises, by its problem's code (see ``_compat``).
_FAILURES: dict[str, type[SymphonyError]] = {
    "conflict": ConflictError,
    "python": CompatibilityError,
    "missing-package": CompatibilityError,
    "incompatible": CompatibilityError,
}


@public
class ExtensionInfo(msgspec.Struct, frozen=True):
    """A snapshot of one extension as the host sees it; safe to show, nothing here is secret.

    ``manifest``, ``name`` and ``summary`` are read from the discovery index when asked for, so listing
    a thousand extensions decodes none of their manifests.
    """

    id: str
    kind: str
    state: State
    enabled: bool
    distribution: str
    version: str
    manifest_file: str | None
    entry_point: str
    problem: Problem | None
    tier: str | None = None
    """Where its code runs once loaded: ``"isolated"`` (kernel-restricted workers), ``"guard"`` (this
    process, under the in-process guard, which is not a sandbox) or ``"none"`` (this process, unguarded:
    a host made with ``isolation="none"``); None until it is loaded."""
    distribution_sha256: str | None = None
    """SHA-256 of the installed distribution's ``RECORD`` file, which a policy's trust entry may pin;
    None when its installer wrote none."""
    environment: str | None = None
    """The environment of its own it was installed in (`Host.install`), or None for the host's own."""
    record: Record | None = None
    """What discovery found, which the manifest is read from."""

    def __repr__(self) -> str:  # what discovery found is left out: it holds the encoded manifest
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__ if name != "record"
        )
        return f"ExtensionInfo({shown})"

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The validated manifest as JSON-ready data; None when it could not be read."""
        return None if self.record is None else self.record.manifest

    @property
    def name(self) -> str | None:
        """The manifest's display name."""
        manifest = self.manifest
        return None if manifest is None else str(manifest["name"])

    @property
    def summary(self) -> str | None:
        """The manifest's one-line summary."""
        manifest = self.manifest
        return None if manifest is None else str(manifest["summary"])

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict for ``--json`` output."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state.value,
            "enabled": self.enabled,
            "distribution": self.distribution,
            "version": self.version,
            "name": self.name,
            "summary": self.summary,
            "entry_point": self.entry_point,
            "manifest_file": self.manifest_file,
            "manifest": self.manifest,
            "tier": self.tier,
            "distribution_sha256": self.distribution_sha256,
            "environment": self.environment,
            "problem": None
            if self.problem is None
            else {"code": self.problem.code, "message": self.problem.message, "hint": self.problem.hint},
        }


class _Slot:
    """One extension's place in the host: its record, lifecycle state and what runs it.

    A plain class rather than a dataclass: every host imports this module, and making a dataclass costs
    more than the rest of the module does."""

    __slots__ = (
        "_lock",
        "audit",
        "config",
        "guard",
        "instance",
        "key",
        "loop",
        "loop_thread",
        "pool",
        "problem",
        "record",
        "recorder",
        "state",
        "stopping",
        "target",
        "tier",
    )

    def __init__(self, key: str, record: Record, state: State) -> None:
        self.key = key
        self.record = record
        self.state = state
        self.problem: Problem | None = None
        self.target: type[Extension] | None = None
        self.instance: Extension | None = None
        self.config: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: threading.Thread | None = None
        self.stopping: Future[Any] | None = None  # a front's deactivate started on its loop, not awaited
        self.guard: Policy | None = None
        self.recorder: Recorder | None = None
        self.audit: list[tuple[str, str | None, str, dict[str, Any]]] | None = None
        self.pool: Pool | None = None
        self.tier: Tier | None = None  # chosen when it is loaded
        self._lock: threading.RLock | None = None

    @property
    def lock(self) -> threading.RLock:
        """Held while the extension moves through its lifecycle; made on first use (discovery makes a
        slot for every installed extension, and most are never started)."""
        lock = self._lock
        if lock is None:
            with _SLOT_LOCKS:
                if self._lock is None:
                    self._lock = threading.RLock()
                lock = self._lock
        return lock


_SLOT_LOCKS = threading.Lock()


_BY_ID = operator.attrgetter("record.id", "record.distribution")


@public
class Host:
    """Runs the extensions installed in this environment on behalf of a marketplace or application."""

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        path: Iterable[str] | None = None,
        import_budget: float = DEFAULT_IMPORT_BUDGET,
        activate_budget: float = DEFAULT_ACTIVATE_BUDGET,
        call_budget: float | None = None,
        actor: str = "host",
        policy: str | Path | None = None,
        isolation: Isolation = "auto",
        guard: bool | None = None,
    ) -> None:
        """``isolation`` (see `Isolation`): ``"auto"``, the default, runs every extension in worker
        processes the kernel restricts to its grant, never importing its code here (``symphony doctor``
        shows what this machine enforces), except those the policy file's ``[[trust]]`` list names, which
        run here under the in-process guard. Where the platform has no isolated tier (macOS, Windows),
        ``"auto"`` runs the others under the guard too, and says so in the log and in each one's
        ``tier``. ``"isolated"`` isolates every extension, ``"guard"`` runs every one here under the guard
        (not a sandbox), ``"none"`` runs every one here unguarded.

        ``guard`` is deprecated (a `DeprecationWarning`; it goes in the next minor release): ``guard=False``
        with ``isolation="guard"`` is ``isolation="none"``; with the other values it changes nothing, so
        it never runs an extension with less protection than ``isolation`` says."""
        if isolation not in ISOLATION:
            raise ValueError(f"isolation must be one of {ISOLATION}, not {isolation!r}")
        if guard is not None:
            warnings.warn(
                "Host(guard=...) is deprecated: pass isolation='none' to run extensions in this process "
                "without the guard, isolation='guard' to run them here under it",
                DeprecationWarning,
                stacklevel=2,
            )
            if not guard and isolation == "guard":
                isolation = "none"
        self.isolation: Isolation = isolation
        self.home = Home.resolve(home)
        self.policy_file = Path(policy) if policy is not None else self.home.policy_file
        self.path = None if path is None else list(path)
        self.import_budget = import_budget
        self.activate_budget = activate_budget
        self.call_budget = call_budget
        self.actor = actor
        self.hooks = pluggy.PluginManager(PROJECT)
        self.hooks.add_hookspecs(HostHooks)
        self.state = HostState(self.home.state_file)
        self.catalog: Catalog | None = None
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.RLock()
        self._subscribers: dict[str, tuple[Callable[[str, Any], object], ...]] = {}
        self._run = Executor(self._lock, self._guarded)
        self._here = InProcess(self, "none" if isolation == "none" else "guard")
        self._workers = Workers(self)
        _interrupts.watch()  # to tell a Ctrl-C from a KeyboardInterrupt that extension code raises

    def prepare(self) -> bool:
        """Pay now, once, what this process would otherwise pay at its first start of an extension, so
        that start costs the host what any later one does.

        Unless ``isolation`` is "none": resolve what the interpreter itself reads and writes, for the
        guard. With "isolated" or "auto", also import the isolated tier, probe what the kernel enforces,
        remove what dead hosts left behind, write the bytecode a worker boots from (in a child process,
        once per home), and import the fronts of the kits of the extensions discovered so far. Call it
        where a host gets ready to serve, after `discover` and before its first start; it runs no
        extension code and starts no worker, and a second call finds nothing left to do. Returns whether
        this host can run isolated workers (False for "guard" and "none")."""
        if self.isolation != "none":
            from symphony_core._security import _guard

            _guard.prepare()
        if self.isolation not in ("isolated", "auto"):
            return False
        with self._lock:
            kinds = [slot.record.kind for slot in self._slots.values()]
        return self._workers.prepare(kinds)

    @property
    def guard(self) -> bool:
        """Deprecated (goes in the next minor release): whether code run in this process is guarded,
        ``isolation != "none"``."""
        warnings.warn(
            "Host.guard is deprecated: read Host.isolation ('none' runs extensions here unguarded)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.isolation != "none"

    # Discovery and inspection

    def discover(self, *, rescan: bool = False) -> list[ExtensionInfo]:
        """Find the installed extensions and validate each one, importing none of them.

        An extension that was loaded and whose installation changed since (upgraded, its manifest
        edited, uninstalled) is stopped first, as `unload` stops it: its ``deactivate`` runs, and an
        isolated one's workers stop. Its new installation is then validated like any other.
        """
        catalog = discover_all(self.home, self.state, path=self.path, rescan=rescan)
        quarantined = self.state.quarantined()
        claims: dict[str, tuple[str, Problem | None]] = {}
        if contested(catalog):  # rare: only then are the policy and the grants read
            from symphony_core._security._grants import read_policy, settle_claims

            claims = settle_claims(catalog, self.state, lambda: read_policy(self.policy_file))
        settled: list[tuple[Record, str, Problem | None]] = []  # each record's key and problem
        for record in catalog.records:
            claim = claims.get(record_key(record)) if claims else None
            key, problem = claim if claim is not None else (canonical_id(record.id), record.problem)
            settled.append((record, key, problem))
        found = {key: (record, problem) for record, key, problem in settled}
        with self._lock:
            changed = [
                slot
                for key, slot in self._slots.items()
                if _holds(slot) and (key not in found or not _kept(slot, *found[key]))
            ]
        for slot in changed:  # outside the host's lock: its deactivate may need the extension's loop
            self._stop_replaced(slot)
        observed = bool(self.hooks.hook.symphony_lifecycle_event.get_hookimpls())
        with self._lock:
            self.catalog = catalog
            slots: dict[str, _Slot] = {}
            for record, key, problem in settled:
                old = self._slots.get(key)
                if old is not None and (_kept(old, record, problem) or old.state in _RUNNING):
                    # unchanged; or started again while it was being stopped: then kept, so that `close`
                    # stops it, and replaced by a later discover
                    slots[key] = old
                    continue
                reason = None if problem else quarantined.get((key, record.distribution_version))
                if reason is not None:
                    problem = Problem("quarantine", f"quarantined: {reason}", lift_hint(key))
                if problem is None and not observed:  # as for almost every extension: no event to send
                    slots[key] = _Slot(key, record, State.VALIDATED)
                    continue
                slot = _Slot(key, record, State.DISCOVERED)
                slots[key] = slot
                self._move(slot, State.FAILED if problem else State.VALIDATED, problem)
            for key, old in self._slots.items():  # uninstalled while it was being stopped: kept likewise
                if key not in slots and old.state in _RUNNING:
                    slots[key] = old
            self._slots = slots
        return self.extensions()

    def _stop_replaced(self, slot: _Slot) -> None:
        """Stop an extension whose installation changed under it, so nothing of the old one runs on."""
        with slot.lock:
            if slot.state is State.ACTIVE:
                log.info("%s: its installation changed: it is stopped", slot.key)
                try:
                    self.deactivate(slot.key)
                except SymphonyError as exc:  # it stopped all the same, failed with the reason
                    log.warning("%s", exc)
            if slot.state in (State.LOADED, State.CONFIGURED, State.DEACTIVATED):
                self.unload(slot.key)
            else:  # it failed on the way: what it still holds goes all the same
                slot.instance = slot.target = None
                self._run.stop_loop(slot)

    def extensions(self) -> list[ExtensionInfo]:
        """Every discovered extension, failed ones included, sorted by id."""
        with self._lock:
            slots = sorted(self._slots.values(), key=_BY_ID)
        enablement = self.state.enablement()
        return [self._info(slot, enablement.get(slot.key, True)) for slot in slots]

    def inspect(self, extension: str) -> ExtensionInfo:
        """Everything known about one extension, without importing it."""
        slot = self._slot(extension)
        return self._info(slot, self.state.is_enabled(slot.key))

    def tier(self, extension: str) -> Literal["isolated", "guard", "none"]:
        """Where the extension's code runs, and so what enforces its grant: ``"isolated"`` (workers the
        kernel restricts), ``"guard"`` (this process, under the in-process guard, which is not a sandbox)
        or ``"none"`` (this process, unguarded). As chosen when it was loaded, else as this host would
        choose it now (from its isolation and the policy file's trust list), importing nothing."""
        return self._tier_of(self._slot(extension)).name

    def enable(self, extension: str) -> bool:
        """Allow the extension to be loaded (remembered across restarts), lifting a quarantine.

        Returns whether a quarantine was lifted: the extension's workers kept crashing, and the person
        enabling it says it has been fixed or updated.
        """
        slot = self._slot(extension)
        self.state.set_enabled(slot.key, True, actor=self.actor)
        lifted = self.state.lift_quarantine(slot.key, actor=self.actor)
        if lifted and slot.problem is not None and slot.problem.code == "quarantine":
            self.discover()  # its failed slot is made again, validated
        return lifted

    def disable(self, extension: str) -> None:
        """Stop the extension if it runs and keep it from being loaded (remembered across restarts)."""
        slot = self._slot(extension)
        if slot.state is State.ACTIVE:
            self.deactivate(extension)
        self.state.set_enabled(slot.key, False, actor=self.actor)

    # Permissions

    def consent(self, extension: str) -> Consent:
        """What the extension requests, what its version was granted, and what still needs consent."""
        from symphony_core._security._grants import evaluate, read_policy
        from symphony_core._security._reach import Roots

        slot = self._slot(extension)
        record = slot.record
        manifest = record.manifest
        listed = None if manifest is None else manifest.get("permissions")
        requested: tuple[dict[str, Any], ...] = tuple(listed) if isinstance(listed, list) else ()
        return evaluate(
            self.state,
            read_policy(self.policy_file),
            extension=slot.key,
            version=record.distribution_version,
            distribution=record.distribution,
            requested=requested,
            sha256=record.distribution_sha256,
            roots=Roots.of(self.home, slot.key),
            name=None if manifest is None else manifest.get("name"),
        )

    def grant(self, extension: str, kinds: Sequence[str] = (), *, actor: str | None = None) -> Consent:
        """Grant the extension's current version what it requests, or only what ``kinds`` names: permission
        types (``"net.connect"``: every scope of it) or single scopes as the consent summary writes them
        (``"fs.read {data}/*.csv"``). What its version (or the earlier one it carries over from) was
        granted is kept; the returned `Consent` says what still needs a yes."""
        from symphony_core._security._grants import chosen_atoms, covered, describe, rebuild

        slot = self._slot(extension)
        if slot.record.manifest is None:  # nothing valid was asked for, so there is nothing to consent to
            raise self._not_in(slot, "validated", "grant")
        consent = self.consent(extension)
        wanted = chosen_atoms(consent.requested, kinds)
        chosen = rebuild(consent.requested, wanted | covered(consent))
        refused = [f"{describe(atom)} ({note.message})" for atom, note in consent.refused if atom in wanted]
        if refused:
            raise ConsentRequired(
                "cannot be granted by anyone: " + "; ".join(refused),
                extension=slot.key,
                hint=f"grant the other types alone (`symphony grant {slot.key} TYPE`), or ask its author to narrow the request",
            )
        who = actor or self.actor
        record = slot.record
        self.state.grant(
            slot.key,
            record.distribution_version,
            chosen,
            actor=who,
            distribution=record.distribution,
            sha256=record.distribution_sha256,
        )
        slot.guard = None
        for permission in rebuild(consent.requested, wanted):
            self._permission_event(slot.key, "granted", str(permission["type"]), who)
        return self.consent(extension)

    def revoke(self, extension: str, *, actor: str | None = None) -> None:
        """Withdraw every grant of the extension (all versions); a running extension is stopped first."""
        slot = self._slot(extension)
        if slot.state is State.ACTIVE:
            self.deactivate(extension)
        who = actor or self.actor
        self.state.revoke(slot.key, actor=who)
        slot.guard = None
        self._permission_event(slot.key, "revoked", "*", who)

    @contextmanager
    def learning(self, extension: str) -> Iterator[Recorder]:
        """Run the extension allowing everything, recording what it touches, to propose its permissions.

        For authors on their own machine: consent is not asked while learning. What is recorded is only
        what Python's audit hooks report (native code is not seen), so review the proposal.
        """
        from symphony_core._security._guard import Policy, Recorder

        if self.isolation == "isolated":
            raise LifecycleError(
                "learning mode watches extension code in this process: it needs isolation='guard'",
                extension=extension,
                hint="learn with Host(isolation='guard') on a machine you trust, then run it isolated",
            )
        slot = self._slot(extension)
        slot.recorder = Recorder(Policy.for_extension(slot.key, (), self.home))
        try:
            yield slot.recorder
        finally:
            slot.recorder = None

    # Managed environments (see _install)

    def install(
        self,
        requirement: str | None = None,
        *,
        wheel: str | Path | None = None,
        grant: bool | Sequence[str] = True,
        allow_outside_files: bool = False,
        confirm: Callable[[InstallPlan], bool] | None = None,
        actor: str | None = None,
    ) -> Installation:
        """Install a distribution (``"name"``, ``"name==1.2"``) from the host's index, or a local ``wheel``,
        into an environment of its own under ``home``; its extensions then run only in isolated workers.

        Wheels only, read without running anything; ``confirm`` gets the `InstallPlan` (the consent summary
        of each extension) before anything is created, and a false answer installs nothing. On success the
        extensions are granted what they request (``grant``: True, False, or only some types). Any failure
        raises `InstallError` and leaves no environment, no grant, and an installed version as it was."""
        from ._install import install

        return install(
            self,
            requirement,
            wheel=wheel,
            grant=grant,
            allow_outside_files=allow_outside_files,
            confirm=confirm,
            actor=actor,
        )

    def upgrade(
        self,
        extension: str,
        *,
        wheel: str | Path | None = None,
        grant: bool | Sequence[str] = True,
        allow_outside_files: bool = False,
        confirm: Callable[[InstallPlan], bool] | None = None,
        actor: str | None = None,
    ) -> Installation:
        """Install the newest release (or ``wheel``) of a managed distribution, named by itself or by an
        extension it ships, beside the installed one, which it replaces on success. The plan's ``changes``
        say what each extension asks for that is new, widened or dropped."""
        from ._install import upgrade

        return upgrade(
            self,
            extension,
            wheel=wheel,
            grant=grant,
            allow_outside_files=allow_outside_files,
            confirm=confirm,
            actor=actor,
        )

    def uninstall(self, extension: str, *, purge: bool = False, actor: str | None = None) -> Installation:
        """Remove a managed distribution's environment and its extensions' grants (stopping them first);
        with ``purge`` also their ``{data}``, ``{cache}`` and config file."""
        from ._install import uninstall

        return uninstall(self, extension, purge=purge, actor=actor)

    # The marketplace (see _marketplace)

    def listings(self) -> Listings:
        """The catalog of the host's marketplace (``[marketplace]`` in ``install.toml``), refreshed and
        verified with TUF against the root the host pinned: every extension it lists, by id
        (``listings.get(id)``), with its versions, wheels, permissions, README and links.

        Raises `MarketplaceError` when the host has no marketplace, or its catalog is unsigned, tampered,
        expired or rolled back, or cannot be reached; needs the ``symphony-sdk-core[marketplace]`` extra."""
        from ._marketplace import listings

        return listings(self)

    def search(self, text: str = "", *, kind: str | None = None) -> list[Listing]:
        """The extensions of the host's verified marketplace catalog whose id, name, summary or
        distribution hold every word of ``text``, best match first (see `listings`)."""
        from ._marketplace import search

        return search(self, text, kind=kind)

    def listed_consent(self, extension: str, version: str | None = None) -> Consent:
        """What a version the marketplace lists (the latest by default) would ask of this host, before it
        is installed: each permission with its reason and its reach here, what an earlier version's grant
        already covers and what the policy decides. Raises `MarketplaceError` as `listings` does, or when
        the catalog does not list it."""
        from ._marketplace import listed_consent

        return listed_consent(self, extension, version)

    # Running

    def start(self, extension: str) -> Extension:
        """Load, configure and activate an extension; return the running extension object."""
        slot = self._slot(extension)
        with slot.lock, self._audit_batch(slot), self._run.one_thread(slot):
            if slot.state in (State.VALIDATED, State.UNLOADED):
                self.load(extension)
            if slot.state in (State.LOADED, State.DEACTIVATED):
                self.configure(extension)
            if slot.state is State.CONFIGURED:
                self.activate(extension)
            return self._running(slot)

    def load(self, extension: str) -> None:
        """Import the extension's module (only now) within the import budget."""
        slot = self._slot(extension)
        with slot.lock:
            if slot.state is State.UNLOADED:
                self._move(slot, State.VALIDATED)
            self._expect(slot, State.VALIDATED, "load")
            self._expect_enabled(slot, extension)
            slot.guard = None  # rebuilt from the grants as they are now
            try:
                slot.tier = self._choose_tier(slot)
            except SymphonyError as exc:
                self._fail(slot, "load", exc)
                raise
            slot.tier.load(slot)
            self._move(slot, State.LOADED)

    def configure(self, extension: str) -> None:
        """Validate the extension's config: defaults < config file < environment < host overrides.

        An invalid config fails the extension with one line per bad field and where its value came from;
        nothing stored is changed, so fixing the bad layer and starting again is enough.
        """
        slot = self._slot(extension)
        with slot.lock:
            if slot.state is not State.DEACTIVATED:
                self._expect(slot, State.LOADED, "configure")
            assert slot.tier is not None
            try:
                config = slot.tier.configure(slot)
            except SymphonyError as exc:
                self._fail(slot, "config", exc)
                raise
            slot.config = config
            self._move(slot, State.CONFIGURED)

    def config(self, extension: str) -> Resolved[Any] | None:
        """The extension's resolved config and where each value came from.

        In this process the config model is imported and ``config`` is its instance. For an extension this
        host isolates, the model is imported only in a short-lived restricted worker, and ``config`` is its
        data, secrets masked.
        """
        return self._resolve_config(self._slot(extension))

    def config_schema(self, extension: str) -> dict[str, Any] | None:
        """The JSON Schema of the extension's config, for editors and `symphony config schema` (from a
        restricted worker for an extension this host isolates)."""
        slot = self._slot(extension)
        return self._tier_of(slot).config_schema(slot)

    def set_config(self, extension: str, key: str, value: str, *, actor: str | None = None) -> Resolved[Any]:
        """Set one config value as a host override, after validating the whole resulting config (in a
        restricted worker for an extension this host isolates).

        ``value`` is text, as a person types it: JSON objects, arrays and ``null`` are parsed, anything
        else is left to the model to convert. `unset_config` removes a value set here.
        """
        from symphony_core._store._config import store_override

        slot = self._slot(extension)
        if not isinstance(value, str):
            raise ConfigError(
                f"cannot set '{key}': its value is given as {type(value).__name__}, not as text",
                extension=slot.key,
                hint="pass the text a person would type ('null' for None, JSON for lists and tables); "
                f"to remove the value set here, call Host.unset_config({slot.key!r}, {key!r})",
            )

        def resolve(overrides: Mapping[str, Any]) -> Resolved[Any]:
            resolved = self._resolve_config(slot, overrides)
            if resolved is None:
                raise ConfigError(
                    "has no config", extension=slot.key, hint="its manifest names no `config` model"
                )
            return resolved

        return store_override(resolve, slot.key, key, value, state=self.state, actor=actor or self.actor)

    def unset_config(self, extension: str, key: str | None = None, *, actor: str | None = None) -> list[str]:
        """Remove the config value set for ``key`` with `set_config` (every one, when ``key`` is None), so
        the layers below apply again; returns the keys removed.

        Nothing is validated: an override is undone whatever the layers below hold, and an extension
        whose config is then invalid fails when it is next configured, naming each bad value.
        """
        slot = self._slot(extension)
        stored = self.state.config_overrides(slot.key)
        if key is not None and key not in stored:
            where = f"values set here: {', '.join(sorted(stored))}" if stored else "no value is set here"
            raise ConfigError(
                f"no value of '{key}' is set here to remove ({where})",
                extension=slot.key,
                hint=f"`symphony config show {slot.key}` shows where each value comes from",
            )
        keys = sorted(stored) if key is None else [key]
        return self.state.clear_config_overrides(slot.key, keys, actor=actor or self.actor)

    def _tier_of(self, slot: _Slot) -> Tier:
        """The extension's tier: as chosen at its load, else as it would be."""
        return slot.tier if slot.tier is not None else self._choose_tier(slot)

    def _resolve_config(
        self, slot: _Slot, overrides: Mapping[str, Any] | None = None
    ) -> Resolved[Any] | None:
        """The config from its layers, with the stored host overrides or ``overrides`` instead: here, or
        for an extension this host isolates, in a restricted worker (its data then, secrets masked)."""
        stored = dict(self.state.config_overrides(slot.key) if overrides is None else overrides)
        self._check_config_variables(slot)
        return self._tier_of(slot).resolve_config(slot, stored)

    def _check_config_variables(self, slot: _Slot) -> None:
        """Refuse config variables whose prefix another installed extension's id shares (`env_prefix`)."""
        from symphony_core._store._config import config_variables, sharing_prefix

        if not config_variables(slot.key):  # as for most: no variable to refuse, and no ids to compare
            return
        installed = () if self.catalog is None else [record.id for record in self.catalog.records]
        config_variables(slot.key, shared_with=sharing_prefix(slot.key, installed))

    def activate(self, extension: str) -> None:
        """Create the extension and run its ``activate`` within the activation budget."""
        slot = self._slot(extension)
        with slot.lock:
            self._expect(slot, State.CONFIGURED, "activate")
            self._expect_enabled(slot, extension)  # disabled after it was loaded: it must not run again
            if slot.recorder is None:
                self._settle_consent(slot)
            record = slot.record
            context = Context(
                id=record.id,
                version=record.distribution_version,
                manifest=record.manifest or {},
                config=slot.config,
                data_dir=self.home.data_dir(record.id),
                cache_dir=self.home.extension_cache_dir(record.id),
                logger=logging.getLogger(f"symphony.ext.{record.id}"),
                publish=functools.partial(self._publish, slot.key),
            )
            for folder in (context.data_dir, context.cache_dir):  # the extension's own, made by the host
                folder.mkdir(parents=True, exist_ok=True)
            assert slot.tier is not None
            slot.tier.activate(slot, context)
            self._move(slot, State.ACTIVE)

    def subscribe(self, extension: str, callback: Callable[[str, Any], object]) -> Callable[[], None]:
        """Receive what the extension publishes (``Context.publish``): ``callback(name, data)``.

        Works in both tiers: from an isolated worker the events come over a pipe of their own. The callback
        runs on the thread that published (or, isolated, on the worker's event thread): keep it short. One
        that raises is logged and the others still get the event. Returns a function that unsubscribes.
        """
        key = self._slot(extension).key
        with self._lock:
            self._subscribers[key] = (*self._subscribers.get(key, ()), callback)

        def unsubscribe() -> None:
            with self._lock:
                left = tuple(known for known in self._subscribers.get(key, ()) if known is not callback)
                if left:
                    self._subscribers[key] = left
                else:
                    self._subscribers.pop(key, None)

        return unsubscribe

    def _publish(self, key: str, name: str, data: Any = None) -> bool:
        if not isinstance(name, str):
            raise TypeError(f"an event's name is a str, not {type(name).__name__}")
        import msgspec

        # Checked and copied as if it crossed from a worker, so an event behaves alike in both tiers.
        data = msgspec.msgpack.decode(msgspec.msgpack.encode(data))
        subscribers = self._subscribers.get(key, ())
        for callback in subscribers:
            try:
                callback(name, data)
            except Exception:
                log.exception("%s: a subscriber failed on event %r", key, name)
        return bool(subscribers)

    def call(self, extension: str, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call a public method of an active extension; a coroutine result is run to completion.

        A sync method runs in the caller's thread. A coroutine runs on the extension's own event loop,
        cut off after the host's ``call_budget`` when one is set. A ``SystemExit`` or ``KeyboardInterrupt``
        the extension raises is its failure (`ExtensionFailed`); a Ctrl-C the host receives goes through
        (the rule is in ``_interrupts``).
        """
        slot = self._slot(extension)
        function = self._method(slot, method)
        with self._calling(slot, method):
            with self._guarded(slot):
                result = function(*args, **kwargs)
            return self._run.wait(slot, result, self.call_budget)

    async def acall(self, extension: str, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """`call` for hosts that are themselves async: awaits without blocking the caller's event loop."""
        slot = self._slot(extension)
        function = self._method(slot, method)
        assert slot.tier is not None  # it is active
        return await slot.tier.acall(slot, extension, method, function, args, kwargs)

    @contextmanager
    def _calling(self, slot: _Slot, method: str) -> Iterator[None]:
        """Report what a call of the extension's ``method`` raised as about it, as `call` promises."""
        interrupts = _interrupts.received()
        try:
            yield
        except SymphonyError as exc:
            blamed(exc, slot.key)  # what its code raised is about it (its worker's errors say so already)
            raise
        except Exception as exc:
            raise ExtensionFailed(
                f"'{method}' raised {type(exc).__name__}: {exc}",
                extension=slot.key,
                hint="the error is the extension's own (its traceback is this error's cause): check what was "
                "passed to it, or report it to the extension's author",
            ) from exc
        except (SystemExit, KeyboardInterrupt) as exc:
            if isinstance(exc, KeyboardInterrupt) and not _interrupts.raised_by_code(interrupts):
                raise  # a Ctrl-C: the person stops the host
            raise escaped(slot, f"'{method}'", exc) from exc

    def _method(self, slot: _Slot, method: str) -> Callable[..., Any]:
        instance = self._running(slot)
        if method.startswith("_") or method in ("activate", "deactivate"):
            raise LifecycleError(
                f"'{method}' is not a callable method of the extension",
                extension=slot.key,
                hint="call one of its public methods; the host alone runs activate and deactivate",
            )
        function = getattr(instance, method, None)
        if not callable(function):
            raise LifecycleError(
                f"has no method '{method}'",
                extension=slot.key,
                hint="check the method's name against the version of the extension that is installed",
            )
        return function  # type: ignore[no-any-return]

    def deactivate(self, extension: str) -> None:
        """Run the extension's ``deactivate``; a failure there is reported, the extension still stops."""
        slot = self._slot(extension)
        with slot.lock:
            self._expect(slot, State.ACTIVE, "deactivate")
            instance = slot.instance
            slot.instance = None
            assert instance is not None
            try:
                self._run.within(
                    self.activate_budget,
                    "deactivate",
                    slot,
                    lambda: self._run.wait(slot, instance.deactivate(), None),
                )
            except SymphonyError as exc:
                self._fail(slot, "deactivate", exc)
                raise
            self._move(slot, State.DEACTIVATED)

    def unload(self, extension: str) -> None:
        """Drop the extension's code so that the next load imports it afresh."""
        slot = self._slot(extension)
        with slot.lock:
            if slot.state is State.ACTIVE:
                self.deactivate(extension)
            if slot.state not in (State.LOADED, State.CONFIGURED, State.DEACTIVATED):
                raise LifecycleError(
                    f"cannot unload from state '{slot.state}'",
                    extension=extension,
                    hint="only a loaded, configured or deactivated extension is unloaded; Host.reload starts a "
                    "failed one afresh",
                )
            slot.target = None
            slot.config = None
            self._run.stop_loop(slot)
            _forget_modules(slot.record.entry_point)
            self._move(slot, State.UNLOADED)

    def reload(self, extension: str) -> Extension:
        """Stop the extension if it runs, read its manifest again, and start it afresh."""
        slot = self._slot(extension)
        with slot.lock:
            if slot.state in (State.ACTIVE, State.LOADED, State.CONFIGURED, State.DEACTIVATED):
                self.unload(extension)
            _forget_modules(slot.record.entry_point)
        self.state.lift_quarantine(slot.key, actor=self.actor)
        self.discover(rescan=True)
        return self.start(extension)

    def close(self) -> None:
        """Deactivate every active extension and release the host's resources."""
        for info in self.extensions():
            if info.state is State.ACTIVE:
                try:
                    self.deactivate(info.id)
                except SymphonyError as exc:
                    log.warning("%s", exc)
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            self._run.stop_loop(slot)
        self.state.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Internals

    def _slot(self, extension: str) -> _Slot:
        with self._lock:
            if self.catalog is None:
                self.discover()
            slot = self._slots.get(canonical_id(extension)) or self._slots.get(extension)
        if slot is None:
            raise ExtensionNotFound(
                "no installed extension has this id",
                extension=extension,
                hint="`symphony list` shows the installed extensions",
            )
        return slot

    def _running(self, slot: _Slot) -> Extension:
        if slot.state is not State.ACTIVE or slot.instance is None:
            raise self._not_in(slot, "active")
        return slot.instance

    def _expect(self, slot: _Slot, state: State, action: str) -> None:
        if slot.state is not state:
            raise self._not_in(slot, state.value, action)

    def _expect_enabled(self, slot: _Slot, extension: str) -> None:
        if not self.state.is_enabled(slot.key):
            raise LifecycleError(
                "is disabled", extension=extension, hint=f"run `symphony enable {extension}` to allow it"
            )

    def _not_in(self, slot: _Slot, wanted: str, action: str | None = None) -> SymphonyError:
        doing = f"cannot {action}: " if action else ""
        if slot.state is State.FAILED and slot.problem is not None:
            failed = _FAILURES.get(slot.problem.code, ExtensionFailed)
            return failed(
                f"{doing}it failed: {slot.problem.message}", extension=slot.record.id, hint=slot.problem.hint
            )
        return LifecycleError(
            f"{doing}it is {slot.state}, not {wanted}",
            extension=slot.record.id,
            hint="Host.start takes an extension to active and Host.reload starts it afresh; an extension moves "
            "only along the edges symphony_core.State describes",
        )

    def _settle_consent(self, slot: _Slot) -> None:
        """Refuse to activate without consent; record a grant that carried over or came from policy."""
        manifest = slot.record.manifest
        if not (manifest and manifest.get("permissions")):
            return  # asks for nothing: there is nothing to consent to (nor for a policy to deny)
        from symphony_core._security._grants import settle

        settle(self.consent(slot.key), self.state)
        slot.guard = None  # rebuilt from the grant that now holds

    def _guarded(self, slot: _Slot) -> AbstractContextManager[object]:
        """What the enclosed extension code runs under: the recorder while learning, else what its tier
        says (the in-process guard, which is not a sandbox, unless the host runs it unguarded or in workers)."""
        if slot.recorder is not None:
            from symphony_core._security._guard import learn

            return learn(slot.recorder.policy, slot.recorder)
        return (slot.tier or self._here).guarded(slot)

    def _granted(self, slot: _Slot) -> tuple[Permission, ...]:
        record = slot.record
        grant = current_grant(
            self.state, slot.key, record.distribution_version, record.distribution, record.distribution_sha256
        )
        if grant is None or not grant.permissions:
            return ()
        from pydantic import TypeAdapter

        from symphony_core._model._permissions import Permission

        return TypeAdapter(tuple[Permission, ...]).validate_python(grant.permissions)

    def _permission_event(self, extension: str, action: str, permission: str, actor: str) -> None:
        self._notify("symphony_permission_event", PermissionEvent(extension, action, permission, actor=actor))

    def _notify(self, hook: str, event: object) -> None:
        """Call every observer of ``hook``; one that raises is logged and hides the event from no other."""
        for observer in reversed(getattr(self.hooks.hook, hook).get_hookimpls()):
            try:
                observer.function(event=event)
            except Exception:
                log.exception("an observer of %s raised", hook)

    def _move(self, slot: _Slot, new: State, problem: Problem | None = None) -> None:
        old = slot.state
        if not can_move(old, new):
            raise LifecycleError(
                f"cannot move from '{old}' to '{new}'",
                extension=slot.record.id,
                hint="the host should never try this move: please report it as a bug in Symphony, with how "
                "you got here",
            )
        slot.state = new
        slot.problem = problem if new is State.FAILED else None
        reason = None if problem is None else problem.message
        if new is State.FAILED:
            log.warning("extension %s failed: %s", slot.record.id, reason)
        # What discovery concludes is worked out again by every host on every start and shown by
        # `symphony list`; the audit log keeps what happened to an extension from loading on.
        if old is not State.DISCOVERED:
            detail = {"from": old.value, "to": new.value, "reason": reason}
            if slot.audit is not None:
                slot.audit.append(("lifecycle", slot.key, self.actor, detail))
            else:
                self._write_audit([("lifecycle", slot.key, self.actor, detail)], durable=False)
        if self.hooks.hook.symphony_lifecycle_event.get_hookimpls():  # discovery moves each extension
            self._notify(
                "symphony_lifecycle_event", LifecycleEvent(slot.record.id, old.value, new.value, reason)
            )

    @contextmanager
    def _audit_batch(self, slot: _Slot) -> Iterator[None]:
        """Write the lifecycle records of several steps in one transaction, when the steps are done."""
        if slot.audit is not None:  # already batching (a nested call)
            yield
            return
        slot.audit = []
        try:
            yield
        finally:
            records, slot.audit = slot.audit, None
            # lifecycle records only: a start need not wait for the disk (see State.record_many)
            self._write_audit(records, durable=False)

    def _write_audit(
        self, records: list[tuple[str, str | None, str, dict[str, Any]]], *, durable: bool = True
    ) -> None:
        try:
            self.state.record_many(records, durable=durable)
        except SymphonyError as exc:
            log.error("cannot write the audit log: %s", exc)

    def _fail(self, slot: _Slot, step: str, exc: BaseException) -> None:
        hint = exc.hint if isinstance(exc, SymphonyError) else None
        message = exc.message if isinstance(exc, SymphonyError) else f"{type(exc).__name__}: {exc}"
        slot.instance = None
        self._move(slot, State.FAILED, Problem(step, message, hint))

    def _choose_tier(self, slot: _Slot) -> Tier:
        """Where the extension about to be loaded runs: in workers or in this process."""
        if self.isolation != "auto":
            return self._workers if self.isolation == "isolated" else self._here
        if slot.record.environment is not None:  # installed in an environment of its own: never here
            return self._workers
        if slot.recorder is not None:  # learning mode watches it here, on its author's say-so
            return self._here
        from symphony_core._security._grants import read_policy

        record = slot.record
        policy = read_policy(self.policy_file)
        entry = policy.trusts(record.id, record.distribution, record.distribution_sha256)
        if entry is not None:
            log.info(
                "%s: trusted by entry %d of %s: it runs in this process", slot.key, entry, self.policy_file
            )
            return self._here
        if sys.platform != "linux":
            log.warning(
                "%s is not trusted, but this platform (%s) has no isolated tier: it runs in this process "
                "under the in-process guard, which is not a sandbox",
                slot.key,
                sys.platform,
            )
            return self._here
        return self._workers

    def _info(self, slot: _Slot, enabled: bool) -> ExtensionInfo:
        record = slot.record
        return ExtensionInfo(
            record.id,
            record.kind,
            slot.state,
            enabled,
            record.distribution,
            record.distribution_version,
            record.manifest_file,
            record.entry_point,
            slot.problem,
            None if slot.tier is None else slot.tier.name,
            record.distribution_sha256,
            record.environment,
            record,
        )


def _kept(slot: _Slot, record: Record, problem: Problem | None) -> bool:
    """Whether discovery keeps the extension's slot as it is: same installation, and no failure to
    work out again."""
    return slot.record == record and slot.state is not State.FAILED and not problem


def _holds(slot: _Slot) -> bool:
    """Whether the extension holds something that must be stopped before its slot goes: its code, its
    event loop, its workers."""
    return slot.state in _RUNNING or slot.loop is not None or slot.pool is not None


def _forget_modules(entry_point: str) -> None:
    top = entry_point.partition(":")[0].strip().split(".")[0]
    for name in [name for name in sys.modules if name == top or name.startswith(top + ".")]:
        del sys.modules[name]
