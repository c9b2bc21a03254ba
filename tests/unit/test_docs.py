"""The docs say what the code does: generated tables are current, links resolve, and
the contract and metrics pages name every method and metric the code has."""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import httpx
import pytest

from unitserve import settings
from unitserve.component import MethodTable

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md", ROOT / "examples" / "README.md"]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", ROOT / "scripts/gen_config_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_tables_are_current():
    gen = _generator()
    current = (DOCS / "configuration.md").read_text()
    assert gen.BEGIN in current and gen.END in current
    assert gen.render(current) == current, "docs/configuration.md is stale: run `make docs`"
    assert gen.main(["--check"]) == 0


def test_configuration_names_every_flag_and_variable():
    text = (DOCS / "configuration.md").read_text()
    for opt in (*settings.OPTIONS, *settings.ENV_ONLY):
        for name in (opt.flag, opt.env):
            if name:
                assert f"`{name}" in text, name
    for name in ("MODEL_NAME", "SERVICE_TYPE", "PERSISTENCE"):
        assert f"`{name}`" in text, name


def test_the_generator_notices_a_change():
    gen = _generator()
    current = (DOCS / "configuration.md").read_text()
    assert gen.render(current.replace("`--workers`", "`--wrokers`")) == current


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


# A path to a Python file in backquotes: `tests/e2e/test_image.py`, `protocol/jsonio.py`.
SOURCE_PATH = re.compile(r"`([\w./-]+/[\w.-]+\.py)\b")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_source_files_the_docs_name_exist(page):
    """A module named by its path is in the repository, from its root or (as the docs
    name the package's modules) from src/unitserve; a rename must update the page."""
    for path in SOURCE_PATH.findall(page.read_text()):
        places = [ROOT / path, ROOT / "src" / "unitserve" / path, ROOT / "src" / path]
        assert any(p.is_file() for p in places), f"{page.name} names {path}, which does not exist"


def test_contract_names_every_user_method():
    text = (DOCS / "component-contract.md").read_text()
    for name in MethodTable.__dataclass_fields__:
        base = re.sub(r"_(raw|rest|grpc)$", "", name)
        assert f"`{base}" in text, name
    for name in ("class_names", "init_metadata", "custom_service", "model_error_handler"):
        assert f"`{name}" in text, name


def test_metrics_page_names_every_metric_the_server_exposes(serve):
    server = serve("Tagged")
    server.post("/predict", json={"data": {"ndarray": [[1]]}})
    feedback = {"request": {"data": {"ndarray": [[1]]}}, "reward": 1.0}
    assert server.post("/send-feedback", json=feedback).status_code == 200
    # Request metrics are written just after the answer is sent: wait for them.
    deadline = time.monotonic() + 10
    while True:
        scrape = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
        families = set(re.findall(r"^# TYPE (\S+) ", scrape, re.M))
        if "unitserve_requests_total" in families or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    ours = {f for f in families if f.startswith(("unitserve_", "seldon_api_"))}
    assert {"unitserve_requests_total", "seldon_api_model_feedback_total"} <= ours
    page = (DOCS / "metrics.md").read_text()
    for family in ours:
        assert re.search(rf"`{family}(_total)?`", page), f"{family} is not in docs/metrics.md"
    labels = set(re.findall(r"[{,]([a-z_]+)=", scrape))
    for label in labels - {"le", "pid", "code", "operation", "protocol", "reason"}:
        if label.startswith("tagged"):
            continue
        assert f"`{label}`" in page, f"label {label} is not in docs/metrics.md"
