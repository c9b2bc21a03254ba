#!/usr/bin/env bash
# Check that a real Prometheus server scrapes unitserve's metrics endpoint.
# Needs Debian's prometheus package (apt-get install prometheus) and the project's
# .venv (make test builds it). Everything listens on 127.0.0.1 and is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v prometheus >/dev/null || { echo "install prometheus first (apt-get install prometheus)"; exit 2; }
exec .venv/bin/python -m pytest -q tests/e2e/test_prometheus_server.py -rs
