"""What installing an extension into an environment of its own costs, beside uv doing the same alone.

Every figure stands beside a baseline from the same run:

    install        ``symphony install --from WHEEL --yes`` into a fresh home (a whole CLI process: read and
                   check the wheel, consent, ``uv venv`` + ``uv pip install``, record, grant, discover) vs
                   ``uv venv`` + ``uv pip install WHEEL`` into a fresh folder, with the same index and the
                   same find-links; every dependency is in uv's cache (a warm-up round of each fills it)
    disk           the managed environment plus what the home gained besides it, vs the baseline's venv
                   (apparent sizes), and the bytes of files not shared with uv's cache (hardlinks)
    worker         a worker of the managed extension ready from a warm pool (take it, one round trip) vs a
                   cold start of the same worker
    discover       warm ``Host.discover()`` (in-process median) with N managed environments, made cheaply
                   (the installed layout written, the install recorded), vs the same N extensions in the
                   host's own environment; the cost per environment, and what it gives at 1,000

The extension is a trivial operator (``Extension``, a manifest, nothing else) whose wheel requires the
operators kit: polars, the core and their dependencies. The workspace's core and kit come from wheels
built here and offered to uv through ``UV_FIND_LINKS`` (both sides see it); the rest from the configured
index (``UV_DEFAULT_INDEX``, else PyPI).

Budgets (issue 15): managed install ≤ 1.5x the bare uv time, ≤ 5 MB added beyond the baseline's venv,
warm-pool ready ≤ 50 ms, warm ``Host.discover()`` ≤ 5 ms at 1,000 installed extensions (measured at
1,000 in a full run; in ``--quick``, extrapolated from the largest two sizes measured). Run as
``hatch run bench:run install.py [--quick] [--json FILE] [--check] [--sizes 50,200]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from _common import Report, Stat, options, ratio, write_symphony_packages

import symphony_core
from symphony_core._catalog._environments import Installed, record_install, site_packages
from symphony_core._runtime._install import DEFAULT_INDEX, uv_binary
from symphony_core._store._home import Home
from symphony_core._store._state import HostState

ROOT = Path(__file__).resolve().parents[2]
KIT = "symphony-operators>=0.1,<0.2"
MODULE = """
from symphony_core import Extension


class Tiny(Extension):
    def noop(self):
        return None
"""
RAISES = "raise ImportError('discovery must not import an extension')\n"
MiB = 1 << 20


def manifest(ext_id: str) -> str:
    return (
        f'id = "{ext_id}"\nkind = "operator"\nname = "Benchmark {ext_id}"\n'
        f'summary = "Exists to be installed by the benchmark."\ntargets = "{KIT}"\n'
    )


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", help="managed environments for discover (default quick 50,200; full 50,200,1000)"
    )
    args = parser.parse_args()
    report = Report("install", args)
    quick = args.quick
    repeat = args.repeat or (3 if quick else 7)
    sizes = [int(size) for size in (args.sizes or ("50,200" if quick else "50,200,1000")).split(",")]
    uv = uv_binary()
    index = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or DEFAULT_INDEX
    report.note(
        f"install: {repeat} samples per figure; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="symphony-bench-install-") as tmp:
        folder = Path(tmp)
        links = folder / "links"
        for package in ("symphony-core", "symphony-operators"):
            run([uv, "build", "--wheel", "--quiet", "--out-dir", links, ROOT / "packages" / package])
        (folder / "wheel").mkdir()
        wheel = symphony_core.write_distribution(
            folder / "wheel",
            "bench-tiny",
            "1.0.0",
            files={"bench_tiny/__init__.py": MODULE, "bench_tiny/symphony.toml": manifest("bench.tiny")},
            entry_points={"symphony.operators": {"bench.tiny": "bench_tiny:Tiny"}},
            requires=(KIT,),
            requires_python=">=3.10",
            wheel=True,
        )
        env = {**os.environ, "UV_FIND_LINKS": str(links)}
        env.pop("VIRTUAL_ENV", None)
        environment = installs(report, folder, wheel, uv, index, env, repeat)
        workers(report, folder / "home-last", environment, repeat)
        discovery(report, folder / "discover", sizes, 5 if quick else 15)
    return report.finish()


def run(command: list[str | Path], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stderr}")


def timed(work: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    work()
    return time.perf_counter_ns() - start


def installs(
    report: Report, folder: Path, wheel: Path, uv: str, index: str, env: dict[str, str], repeat: int
) -> Path:
    """Time both installs, interleaved after a warm-up round; return the last managed environment."""
    symphony = Path(sys.executable).parent / "symphony"

    def bare(target: Path) -> None:
        run([uv, "venv", "--quiet", "--python", sys.executable, target], env)
        run(
            [uv, "pip", "install", "--quiet", "--python", target / "bin" / "python", "--no-build",
             "--default-index", index, wheel],
            env,
        )  # fmt: skip

    def managed(home: Path) -> None:
        home.mkdir()
        (home / "install.toml").write_text(f'index = "{index}"\n', encoding="utf-8")
        run([symphony, "--home", home, "install", "--from", wheel, "--yes", "--json"], env)

    baseline, ours = [], []
    for round_ in range(repeat + 1):
        venv, home = folder / f"venv-{round_}", folder / f"home-{round_}"
        took = timed(lambda venv=venv: bare(venv)), timed(lambda home=home: managed(home))
        if round_:  # round 0 fills uv's cache and the page cache
            baseline.append(took[0])
            ours.append(took[1])
        if round_ < repeat:
            shutil.rmtree(venv)
            shutil.rmtree(home)
    base, mine = Stat.of_ns(baseline), Stat.of_ns(ours)
    report.figure("install.uv venv + uv pip install (baseline)", base)
    report.figure("install.symphony install --from WHEEL --yes", mine)
    report.table(
        "Install, dependencies in uv's cache (ms)",
        ("figure", "median (min)", "vs uv"),
        [
            ("uv venv + uv pip install (baseline)", f"{base} ms", "1.00x"),
            ("symphony install --from WHEEL --yes", f"{mine} ms", ratio(mine, base)),
        ],
    )
    report.budget("managed install time / bare uv", mine.median / base.median, 1.5, "x")

    last = folder / f"home-{repeat}"
    (environment,) = [
        path for path in (last / "envs" / "bench-tiny").iterdir() if not path.name.startswith(".")
    ]
    shutil.move(last, folder / "home-last")
    environment = folder / "home-last" / environment.relative_to(last)
    home = folder / "home-last"
    with zipfile.ZipFile(wheel) as archive:
        own = sum(info.file_size for info in archive.infolist())
    sizes = {
        "baseline venv": apparent(folder / f"venv-{repeat}"),
        "managed environment": apparent(environment),
        "rest of the home (state, index, settings)": apparent(home) - apparent(environment),
        "the extension's own files": own,
    }
    unshared = {
        "baseline venv": unshared_bytes(folder / f"venv-{repeat}"),
        "managed environment": unshared_bytes(environment),
    }
    added = (
        sizes["managed environment"]
        + sizes["rest of the home (state, index, settings)"]
        - sizes["baseline venv"]
    )
    for name, size in sizes.items():
        report.figure(f"disk.{name} (bytes)", size)
    for name, size in unshared.items():
        report.figure(f"disk.{name}, not shared with uv's cache (bytes)", size)
    report.figure("disk.added beyond the baseline (bytes)", added)
    report.table(
        "Disk per extension (MB)",
        ("what", "apparent", "not shared with uv's cache"),
        [
            (name, f"{size / MiB:.2f}", f"{unshared[name] / MiB:.2f}" if name in unshared else "")
            for name, size in sizes.items()
        ]
        + [("added beyond the baseline venv", f"{added / MiB:.2f}", "")],
    )
    report.budget("disk added beyond the extension's own install", added / MiB, 5.0, "MB")
    return environment


def apparent(folder: Path) -> int:
    """Bytes of every file under ``folder``, each hardlinked inode once, symlinks not followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            stat = os.lstat(os.path.join(root, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def unshared_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` that no other link shares (uv hardlinks from its cache)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            stat = os.lstat(os.path.join(root, name))
            if stat.st_nlink == 1:
                total += stat.st_size
    return total


def workers(report: Report, home: Path, environment: Path, repeat: int) -> None:
    from symphony_core._security._sandbox._pool import Pool
    from symphony_core._security._sandbox._probe import probe
    from symphony_core._security._sandbox._process import WorkerProcess
    from symphony_core._security._sandbox._profile import WorkerSpec

    if not probe().supported:
        report.note("worker: the isolated tier needs Linux: not measured")
        return
    spec = WorkerSpec(
        extension="bench.tiny", entry_point="bench_tiny:Tiny", home=Home(home), environment=str(environment)
    )
    WorkerProcess.start(spec).stop()  # warm-up: page cache, bytecode
    cold, warm = [], []
    pool = Pool(spec, size=1).start()
    try:
        for _ in range(max(repeat, 5)):
            started: list[WorkerProcess] = []
            cold.append(timed(lambda started=started: started.append(WorkerProcess.start(spec))))
            started[0].stop()

            def take() -> None:
                with pool.worker() as ready:
                    ready.ping()

            warm.append(timed(take))
    finally:
        pool.close()
    base, mine = Stat.of_ns(cold), Stat.of_ns(warm)
    report.figure("worker.cold start, managed environment", base)
    report.figure("worker.ready from a warm pool, managed environment", mine)
    report.table(
        "Worker of the managed extension (ms)",
        ("figure", "median (min)", "vs cold start"),
        [
            ("cold start (baseline)", f"{base} ms", "1.00x"),
            ("ready from a warm pool", f"{mine} ms", ratio(mine, base)),
        ],
    )
    report.budget("managed worker ready from a warm pool", mine.median, 50.0, "ms")


def discovery(report: Report, folder: Path, sizes: list[int], calls: int) -> None:
    from symphony_core import Host

    host_site = folder / "host-site"
    write_symphony_packages(host_site)
    rows, managed_ms = [], {}
    for size in sizes:
        home = folder / f"managed-{size}"
        state = HostState(Home(home).state_file)
        for number in range(size):
            environment = home / "envs" / f"bench-ext-{number}" / "1.0.0-0000"
            site = site_packages(environment)
            write_extension(site, number)
            write_symphony_packages(site)
            record_install(
                state,
                Installed(
                    f"bench-ext-{number}",
                    "1.0.0",
                    environment,
                    "w.whl",
                    "0" * 64,
                    "bench",
                    extensions=(f"bench.ext{number}",),
                ),
                actor="bench",
                previous=None,
            )
        together = folder / f"site-{size}"
        write_symphony_packages(together)
        for number in range(size):
            write_extension(together, number)
        figures = {}
        for name, host in (
            ("in the host's environment (baseline)", Host(folder / f"plain-{size}", path=[str(together)])),
            ("in managed environments", Host(home, path=[str(host_site)])),
        ):
            found = len(host.discover())  # builds the indexes
            assert found == size, f"{name}: {found} extensions found, {size} expected"
            figures[name] = Stat.of_ns(timed(host.discover) for _ in range(calls))
            report.figure(f"discover.{size}.{name}", figures[name])
        base, mine = figures["in the host's environment (baseline)"], figures["in managed environments"]
        managed_ms[size] = mine.median
        rows.append((size, f"{base} ms", f"{mine} ms", ratio(mine, base)))
    report.table(
        "Warm Host.discover(), in-process (ms)",
        ("extensions", "in the host's environment", "each in its own environment", "ratio"),
        rows,
    )
    if len(sizes) < 2:
        return
    small, large = sorted(managed_ms)[-2:]
    per = (managed_ms[large] - managed_ms[small]) / (large - small)
    at_1000 = managed_ms[1000] if 1000 in managed_ms else managed_ms[large] + per * (1000 - large)
    report.figure("discover.per managed environment (ms)", per)
    report.figure("discover.at 1,000 managed environments (ms)", at_1000)
    how = "measured" if 1000 in managed_ms else f"extrapolated from {small} and {large}"
    report.note(
        f"  warm Host.discover(): {per * 1000:.1f} us per managed environment; at 1,000: {at_1000:.1f} ms ({how})"
    )
    report.budget("warm Host.discover(), 1,000 managed environments", at_1000, 5.0, "ms")


def write_extension(site: Path, number: int) -> None:
    ext_id, module = f"bench.ext{number}", f"bench_ext_{number}"
    symphony_core.write_distribution(
        site,
        f"bench-ext-{number}",
        "1.0.0",
        files={f"{module}/__init__.py": RAISES, f"{module}/symphony.toml": manifest(ext_id)},
        entry_points={"symphony.operators": {ext_id: f"{module}:Ext"}},
        requires=(KIT,),
        requires_python=">=3.10",
    )


if __name__ == "__main__":
    sys.exit(main())
