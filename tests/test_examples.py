"""The example extensions, installed in the workspace, run through the host like any user's would."""

import polars as pl

from symphony_core import Host, State


def test_the_route_delays_example_is_discovered_and_runs_on_a_real_frame(tmp_path):
    flights = pl.LazyFrame(
        {
            "origin": ["JFK", "JFK", "LGA", "EWR"],
            "dest": ["LAX", "LAX", "ORD", "LAX"],
            "dep_delay": [10.0, 30.0, -5.0, None],
            "arr_delay": [5.0, 25.0, -10.0, 40.0],
        }
    )
    with Host(tmp_path) as host:
        infos = {info.id: info for info in host.discover()}
        assert infos["examples.route-delays"].state is State.VALIDATED

        host.start("examples.route-delays")
        result = host.call("examples.route-delays", "apply", flights).collect()

    assert result.columns == ["origin", "dest", "flights", "mean_dep_delay", "mean_arr_delay"]
    assert result.row(0, named=True) == {
        "origin": "EWR",
        "dest": "LAX",
        "flights": 1,
        "mean_dep_delay": None,
        "mean_arr_delay": 40.0,
    }
    assert result.filter(pl.col("origin") == "JFK")["mean_dep_delay"].item() == 20.0
