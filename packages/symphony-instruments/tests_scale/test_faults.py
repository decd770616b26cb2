"""What a caller of a served instrument gets when things go wrong: a replica that dies mid-request, bad
input, a body over the limit, an unknown model. Always an answer with its status, never a hang."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow

DIGITS = "examples.digits"
CRASHER = "tests.crasher"


def _x(values: list[float]) -> dict[str, object]:
    return {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": values}]}


def test_a_replica_that_dies_mid_request_answers_an_error_and_ray_restarts_it(cluster, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Trusted, so it runs in the replica's own process (the guard tier), and its exit ends the replica.
    (home / "policy.toml").write_text('[[trust]]\ndistribution = "symphony-tests-crasher"\n')
    url = cluster.serve(CRASHER, home=home, env={"SYMPHONY_TESTS_CRASHER__SERVING__CPUS": "0.2"})
    infer = f"{url}/v2/models/{CRASHER}/infer"
    with httpx.Client(timeout=60) as client:
        healthy = client.post(infer, json=_x([1.0, 2.0]))
        assert healthy.status_code == 200, healthy.text
        assert healthy.json()["outputs"][0]["data"] == [2.0, 4.0]

        started = time.monotonic()
        crashed = client.post(infer, json=_x([-1.0, 0.0]))
        assert crashed.status_code >= 500, crashed.text
        assert time.monotonic() - started < 60

        deadline = time.monotonic() + 120
        while True:  # Ray starts a new replica in its place
            answer = client.post(infer, json=_x([3.0, 4.0]))
            if answer.status_code == 200:
                break
            assert time.monotonic() < deadline, (
                f"no replica answered again: {answer.status_code} {answer.text}"
            )
            time.sleep(1)
        assert answer.json()["outputs"][0]["data"] == [6.0, 8.0]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not JSON"),
        (
            b'{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP64", "data": []}]}',
            400,
            "pixels",
        ),
        (
            b'{"inputs": [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": '
            + b"[0]" * 0
            + b"[]}]}",
            400,
            "pixels",
        ),
        (
            b'{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": ["a"]}]}',
            400,
            "pixels",
        ),
        (
            b'{"inputs": [{"name": "other", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}',
            400,
            "pixels",
        ),
    ],
)
def test_bad_requests_are_answered_400_naming_what_is_wrong(digits_url, body, status, words) -> None:
    answer = httpx.post(
        f"{digits_url}/v2/models/{DIGITS}/infer",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]


def test_a_body_over_the_limit_is_answered_413_and_an_unknown_route_404(digits_url) -> None:
    huge = b"[" + b"0," * (9 * 2**20) + b"0]"  # over serving.max_request_mb (16 MiB)
    answer = httpx.post(f"{digits_url}/v2/models/{DIGITS}/infer", content=huge, timeout=120)
    assert answer.status_code == 413
    assert "larger than this server accepts" in answer.json()["error"]
    assert httpx.get(f"{digits_url}/v2/models/{DIGITS}/versions/9.9/ready").status_code == 404
    assert httpx.get(f"{digits_url}/v2/models/{DIGITS}/nothing").status_code == 404


def test_a_deployment_that_cannot_be_placed_fails_at_its_timeout_saying_what_ray_waits_for(
    cluster, tmp_path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert cluster.symphony("grant", CRASHER, "--yes", home=home).returncode == 0
    more_than_the_cluster = {"SYMPHONY_TESTS_CRASHER__SERVING__CPUS": "16"}  # the cluster has 2
    started = time.monotonic()
    try:
        refused = cluster.symphony(
            "serve",
            CRASHER,
            "--port",
            str(cluster.http_port),
            "--timeout",
            "40",
            home=home,
            env=more_than_the_cluster,
        )
        assert time.monotonic() - started < 150, "the command gives up at its timeout"
        assert refused.returncode != 0
        assert f"{CRASHER}: its replicas did not all answer within 40 s" in refused.stderr
        # past 30 s Ray says which resources each replica asks for and the cluster has
        assert "CPU" in refused.stderr, refused.stderr
        assert f"serve delete {CRASHER}" in refused.stderr
    finally:  # the deployment stays, waiting: remove it, as the message says
        delete = f"import ray; from ray import serve; ray.init(address={cluster.address!r}); serve.delete({CRASHER!r})"
        subprocess.run([sys.executable, "-c", delete], env=cluster.env, capture_output=True, timeout=120)
