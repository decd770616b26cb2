"""Pipeline specs (TOML) naming installed operators, run through a real ``symphony_core.Host``.

The operators are distributions installed into a site folder on ``sys.path`` (conftest ``site``): the
host discovers them through their ``symphony.operators`` entry points, asks for consent, imports and
activates them, and runs their code under the in-process guard, where the file helpers' checks hold.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_core import ConsentRequired, Host
from symphony_operators import PermissionDenied, SchemaMismatch, SpecError, load_pipeline, read_spec

TARGETS = 'targets = "symphony-operators>=0.1,<0.2"\n'

JOIN_AIRLINES = '''
"""Adds each flight's airline name, from a table in the extension's own data folder."""

import polars as pl

from symphony_operators import Config, Operator, scan, sink


class Settings(Config):
    airlines: str = "airlines/*.csv"


class JoinAirlines(Operator):
    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        names = scan(self.context.data_dir / self.config.airlines).rename({"name": "airline"})
        return frame.join(names, on="carrier", how="left")

    def keep_copy(self, frame: pl.LazyFrame, path: str) -> str:
        return str(sink(frame, path))
'''

JOIN_MANIFEST = (
    'id = "acme.join-airlines"\nkind = "operator"\nname = "Join airlines"\n'
    'summary = "Adds the airline name."\n' + TARGETS + 'config = "acme_airlines:Settings"\n'
    """
[[permissions]]
type = "fs.read"
paths = ["{data}"]
reason = "Read the airline names you put in the extension's data folder."

[[permissions]]
type = "fs.write"
paths = ["{data}/copies"]
reason = "Keep copies of tables you ask it to keep."

[[contributes.input]]
name = "carrier"
dtype = "String"

[[contributes.output]]
name = "airline"
dtype = "String"
"""
)

LATE_BY_AIRLINE = '''
"""Share of late arrivals per airline."""

import polars as pl

from symphony_operators import Config, Operator


class Settings(Config):
    late_after: float = 15.0


class LateByAirline(Operator):
    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        late = pl.col("arr_delay") > self.config.late_after
        return frame.group_by("airline").agg(pl.len().alias("flights"), late.mean().alias("late_share")).sort("airline")
'''

LATE_MANIFEST = (
    'id = "acme.late-by-airline"\nkind = "operator"\nname = "Late by airline"\n'
    'summary = "Share of late arrivals per airline."\n' + TARGETS + 'config = "acme_late:Settings"\n'
    """
[[contributes.input]]
name = "airline"
dtype = "String"

[[contributes.input]]
name = "arr_delay"
dtype = "Float64"

[[contributes.output]]
name = "late_share"
dtype = "Float64"
"""
)

SPEC = """
[pipeline]
name = "late-airlines"
engine = "streaming"

[sources.flights]
path = "data/flights-*.parquet"

[[steps]]
operator = "acme.join-airlines"

[[steps]]
operator = "acme.late-by-airline"
config = {{ late_after = {late_after} }}

[[sinks]]
path = "out/late.csv"

[[sinks]]
input = "acme.join-airlines"
path = "out/named.parquet"
"""


@pytest.fixture
def installed(site, tmp_path: Path):
    site.install(
        "acme-airlines",
        entry_points={"acme.join-airlines": "acme_airlines:JoinAirlines"},
        files={"acme_airlines/__init__.py": JOIN_AIRLINES, "acme_airlines/symphony.toml": JOIN_MANIFEST},
    )
    site.install(
        "acme-late",
        entry_points={"acme.late-by-airline": "acme_late:LateByAirline"},
        files={"acme_late/__init__.py": LATE_BY_AIRLINE, "acme_late/symphony.toml": LATE_MANIFEST},
    )
    # Pipelines run operators in the host's process: `load_pipeline` needs them there (not isolated).
    with Host(tmp_path / "home", isolation="guard") as host:
        yield host


@pytest.fixture
def project(tmp_path: Path, flights: pl.DataFrame) -> Path:
    """A folder with the real flights split by month and a spec file."""
    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)
    for (month,), part in flights.partition_by("month", as_dict=True).items():
        part.write_parquet(data / f"flights-{month:02}.parquet")
    return tmp_path / "project"


def _airlines_in_data_dir(host: Host, airlines: pl.DataFrame) -> Path:
    data_dir: Path = host.start("acme.join-airlines").context.data_dir
    (data_dir / "airlines").mkdir(parents=True, exist_ok=True)
    airlines.write_csv(data_dir / "airlines" / "airlines.csv")
    return data_dir


def test_a_spec_composes_installed_operators_through_the_host(installed: Host, project, flights, airlines):
    installed.grant("acme.join-airlines")
    _airlines_in_data_dir(installed, airlines)
    spec = project / "late.toml"
    spec.write_text(SPEC.format(late_after=30))

    pipeline = load_pipeline(spec, installed)
    run = pipeline.run()

    expected = (
        flights.join(airlines.rename({"name": "airline"}), on="carrier", how="left")
        .group_by("airline")
        .agg(pl.len().alias("flights"), (pl.col("arr_delay") > 30).mean().alias("late_share"))
        .sort("airline")
    )
    assert run.outputs == (project / "out" / "late.csv", project / "out" / "named.parquet")
    assert_frame_equal(pl.read_csv(run.outputs[0]), expected, check_dtypes=False)
    assert pl.read_parquet(run.outputs[1]).height == flights.height
    assert "United Air Lines Inc." in pl.read_csv(run.outputs[0])["airline"].to_list()


def test_a_spec_cannot_run_an_operator_the_user_has_not_consented_to(installed: Host, project):
    spec = project / "late.toml"
    spec.write_text(SPEC.format(late_after=30))

    with pytest.raises(ConsentRequired, match=re.escape("acme.join-airlines")):
        load_pipeline(spec, installed)


def test_an_operator_reading_through_a_symlink_out_of_its_grant_is_refused(
    installed, project, airlines, tmp_path
):
    installed.grant("acme.join-airlines")
    data_dir = _airlines_in_data_dir(installed, airlines)
    secret = tmp_path / "elsewhere" / "secrets.csv"
    secret.parent.mkdir()
    secret.write_text("carrier,name\nUA,leaked\n")
    (data_dir / "airlines" / "more.csv").symlink_to(secret)
    spec = project / "late.toml"
    spec.write_text(SPEC.format(late_after=30))

    pipeline = load_pipeline(spec, installed)
    with pytest.raises(PermissionDenied) as caught:
        pipeline.build()

    message = str(caught.value)
    assert caught.value.extension == "acme.join-airlines"
    assert f"fs.read of {secret} through the symlink {data_dir / 'airlines' / 'more.csv'}" in message
    assert "outside the paths this extension may use" in message
    assert isinstance(caught.value, PermissionError)


def test_a_steps_config_cannot_point_an_operator_outside_its_grant(installed, project, airlines, tmp_path):
    installed.grant("acme.join-airlines")
    _airlines_in_data_dir(installed, airlines)
    outside = tmp_path / "outside.csv"
    airlines.write_csv(outside)
    spec = project / "late.toml"
    spec.write_text(
        SPEC.format(late_after=30).replace(
            'operator = "acme.join-airlines"\n',
            f'operator = "acme.join-airlines"\nconfig = {{ airlines = "{outside}" }}\n',
        )
    )

    with pytest.raises(PermissionDenied, match=f"fs.read of {outside} .*was not granted"):
        load_pipeline(spec, installed).build()


def test_a_spec_whose_steps_do_not_fit_is_refused_before_running(installed, project, flights):
    installed.grant("acme.join-airlines")
    spec = project / "late.toml"
    skipped = SPEC.format(late_after=30).replace('[[steps]]\noperator = "acme.join-airlines"\n\n', "")
    spec.write_text(skipped.partition('[[sinks]]\ninput = "acme.join-airlines"')[0])

    with pytest.raises(SchemaMismatch) as caught:
        load_pipeline(spec, installed).build()

    (mismatch,) = caught.value.mismatches
    assert (mismatch.operator, mismatch.column) == ("acme.late-by-airline", "airline")
    assert not (project / "out").exists()


def test_a_bad_spec_names_the_file_and_each_bad_key(tmp_path: Path):
    spec = tmp_path / "bad.toml"
    spec.write_text(
        textwrap.dedent(
            """
            [pipeline]
            engine = "gpu"

            [sources.flights]
            path = "x.csv"
            fromat = "csv"

            [[steps]]
            name = "no-operator"
            """
        )
    )

    with pytest.raises(SpecError) as caught:
        read_spec(spec)

    text = str(caught.value)
    assert f"{spec}: pipeline.engine" in text
    assert f"{spec}: sources.flights.fromat" in text
    assert f"{spec}: steps[0].operator" in text
    assert f"{spec}: sinks" in text


def test_an_operator_writes_only_inside_its_grant_and_never_half_a_file(installed: Host, tmp_path: Path):
    installed.grant("acme.join-airlines")
    data_dir: Path = installed.start("acme.join-airlines").context.data_dir
    frame = pl.LazyFrame({"carrier": ["UA", "AA"]})

    kept = installed.call("acme.join-airlines", "keep_copy", frame, str(data_dir / "copies" / "c.parquet"))
    assert pl.read_parquet(kept).height == 2

    outside = tmp_path / "elsewhere" / "c.parquet"
    with pytest.raises(PermissionDenied, match=f"fs.write of {re.escape(str(outside))} was not granted"):
        installed.call("acme.join-airlines", "keep_copy", frame, str(outside))
    assert not outside.parent.exists()
