"""A real Prometheus server (Debian's `prometheus` package) scrapes our endpoint.

Skipped when no `prometheus` binary is installed (`apt-get install prometheus`);
scripts/prometheus-scrape.sh runs the same check by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import httpx
import pytest

from ..conftest import free_ports, wait_until

PROMETHEUS = shutil.which("prometheus")


@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus)")
def test_real_prometheus_scrapes_the_endpoint(fresh_server, tmp_path):
    server = fresh_server("Tagged", "--workers", "2", grpc=False)
    for _ in range(5):
        assert httpx.post(f"{server.url}/predict", json={"data": {"ndarray": [[1]]}}).is_success
    (port,) = free_ports(1)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: unitserve\n"
        "    metrics_path: /prometheus\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.metrics_port}']}}]\n"
    )
    assert PROMETHEUS is not None  # the test is skipped without it
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=60, every=0.2)
        api = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 60
        value = None
        while time.monotonic() < deadline:
            try:
                result = httpx.get(
                    f"{api}/query",
                    params={"query": 'sum(tagged_calls_total{method="predict"})'},
                    timeout=5,
                ).json()
                targets = httpx.get(f"{api}/targets", timeout=5).json()
            except (httpx.TransportError, json.JSONDecodeError):  # still starting
                time.sleep(0.2)
                continue
            active = targets["data"]["activeTargets"]
            if active and active[0]["health"] == "up" and result["data"]["result"]:
                value = float(result["data"]["result"][0]["value"][1])
                break
            time.sleep(0.2)
        assert value == 5.0, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert active[0]["lastError"] == ""
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
