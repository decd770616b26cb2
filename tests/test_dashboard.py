"""The dashboard motif shows what the host writes for it, live: served through the host, read in a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from symphony_core import Host
from symphony_motifs import serve

DASHBOARD = "examples.dashboard"
BROWSER = shutil.which("chromium")


def _call(url: str, method: str) -> dict:
    request = urllib.request.Request(
        f"{url}_symphony/call/{method}",
        data=json.dumps({"args": {}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["result"]


def _replace(path: Path, data: dict) -> None:
    partial = path.with_name(".results.partial")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


@pytest.mark.parametrize(
    "isolation",
    [
        "guard",
        pytest.param("isolated", marks=pytest.mark.skipif(sys.platform != "linux", reason="Linux only")),
    ],
)
def test_the_dashboard_serves_each_new_results_file_the_host_writes(tmp_path, isolation):
    with Host(tmp_path / "home", isolation=isolation) as host:
        host.discover()
        results = host.home.data_dir(DASHBOARD) / "results.json"
        results.parent.mkdir(parents=True)
        _replace(results, {"step": 1})
        host.grant(DASHBOARD)
        with serve(host, DASHBOARD) as server:
            first = _call(server.url, "results")
            _replace(results, {"step": 2})  # a new file of the same name, as the demo writes it
            second = _call(server.url, "results")
            results.write_text("{half a file")
            with pytest.raises(urllib.error.HTTPError) as broken:
                _call(server.url, "results")

    assert first == {"available": True, "data": {"step": 1}}
    assert second == {"available": True, "data": {"step": 2}}
    error = json.loads(broken.value.read())["error"]
    assert "results.json is not valid JSON" in error["message"]
    assert "replace it whole" in error["hint"]


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="needs Debian's chromium (see .ci/run)")
def test_symphony_demo_serves_the_dashboard_that_shows_the_results_live_in_a_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    demo = subprocess.Popen(
        [str(Path(sys.executable).with_name("symphony")), "demo", "--serve", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert demo.stdout is not None
        url = None
        lines = []
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = demo.stdout.readline()
            lines.append(line)
            found = re.search(r"Dashboard \(live\): (http://127\.0\.0\.1:\d+/\S+/)", line)
            url = found.group(1) if found else None
        assert url is not None, "".join(lines)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=BROWSER,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            page = browser.new_page()
            errors: list[str] = []
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.goto(url)
            page.get_by_text("The demo has finished.").wait_for(timeout=180_000)
            digits = page.inner_text("#digits-summary")
            survived = page.inner_text("#survived")
            pipeline = page.inner_text("#pipeline-summary")
            misread = page.locator("#misread canvas").count()
            browser.close()
        data = json.loads((tmp_path / "report.json").read_text())
    finally:
        demo.send_signal(signal.SIGTERM)
        output, _ = demo.communicate(timeout=60)

    assert demo.returncode == 0, output
    assert errors == []
    assert f"360 of 360 held-out images read; {data['digits']['correct']} right" in digits
    assert "The host survived: 5 of 8 examples running" in survived
    assert f"{data['pipeline']['flights_clean']:,} flew" in pipeline
    assert misread == len(data["digits"]["misread"]) > 0
