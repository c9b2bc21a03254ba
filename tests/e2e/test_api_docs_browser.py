"""The API docs page in a real browser: headless Chromium (driven over the DevTools
protocol, tests/cdp.py) opens GET /docs of a real server, finds every path of the
served document listed, sends a prediction with "Try it out" and the example body, and
reads the 200 answer from the page. Screenshots go to the test's tmp folder; with
UNITSERVE_UPDATE_DOCS_IMAGES=1 the page's top also replaces docs/images/api-docs.png (not
on every run: the picture shows the test's random port, so each run would change it)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cdp import Browser, find_chromium
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
PREDICT = "#operations-default-post_api_v1_0_predictions"


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium on this machine (.ci/run installs the chromium package)")
    try:
        started = Browser(executable)
    except (OSError, RuntimeError, TimeoutError) as exc:
        pytest.skip(f"Chromium cannot run here: {exc}")
    yield started
    started.close()


def _text(selector: str) -> str:
    return f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"


def test_the_docs_page_lists_every_path_and_tries_a_prediction(
    fresh_server: Any, browser: Browser, tmp_path: Path
):
    server = fresh_server("Identity")
    served = server.get("/seldon.json").json()
    expected = sorted(
        (method, path)
        for path, item in served["paths"].items()
        for method in item
        if method in ("get", "post")
    )

    browser.send("Page.enable")
    # With a trailing slash, as people type it: the server sends the browser to /docs.
    browser.send("Page.navigate", url=f"{server.url}/docs/")
    wait_until(lambda: browser.evaluate("document.querySelectorAll('.opblock').length") > 0)
    assert browser.evaluate("window.location.pathname") == "/docs"
    title = browser.evaluate(_text(".info .title"))
    assert "Seldon protocol" in title and "Open Inference Protocol" in title, title
    listed = browser.evaluate(
        "[...document.querySelectorAll('.opblock')].map(b => ["
        "  b.className.match(/opblock-(get|post|put|delete)/)[1],"
        "  b.querySelector('.opblock-summary-path').getAttribute('data-path')])"
    )
    assert sorted(map(tuple, listed)) == expected
    browser.screenshot(tmp_path / "api-docs-full.png")

    # Try it out: open the operation, take the example body the page offers, execute.
    browser.evaluate(f"document.querySelector('{PREDICT} .opblock-summary-control').click()")
    wait_until(lambda: browser.evaluate(f"!!document.querySelector('{PREDICT} .try-out__btn')"))
    browser.evaluate(f"document.querySelector('{PREDICT} .try-out__btn').click()")
    body = wait_until(
        lambda: browser.evaluate(
            f"(document.querySelector('{PREDICT} textarea.body-param__text') || {{}}).value"
        )
    )
    assert json.loads(body) == {"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}}
    wait_until(lambda: browser.evaluate(f"!!document.querySelector('{PREDICT} .execute')"))
    browser.evaluate(f"document.querySelector('{PREDICT} .execute').click()")
    status = wait_until(
        lambda: browser.evaluate(
            _text(f"{PREDICT} .live-responses-table tbody .response .response-col_status")
        ).strip()
    )
    assert status == "200"
    answer = browser.evaluate(
        _text(f"{PREDICT} .live-responses-table tbody .response-col_description pre")
    )
    assert json.loads(answer)["data"]["ndarray"] == [[1, 2]]

    # The page's top and the prediction just made, for the docs.
    bottom = browser.evaluate(
        f"(() => {{ const r = document.querySelector('{PREDICT} .live-responses-table')"
        ".getBoundingClientRect(); return r.bottom + window.scrollY; })()"
    )
    shot = tmp_path / "api-docs.png"
    browser.screenshot(shot, clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 20})
    assert shot.stat().st_size > 10_000
    if os.environ.get("UNITSERVE_UPDATE_DOCS_IMAGES") == "1":
        (ROOT / "docs" / "images" / "api-docs.png").write_bytes(shot.read_bytes())
