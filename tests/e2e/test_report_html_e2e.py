"""`agent-otel report --format html` against the e2e Prometheus scraping the demo, opened in headless Chromium
(tests/support/browser.py): the page is self-contained (no URL to fetch, nothing requested but the file
itself, with every host name unresolvable), loads with no console error, and its screenshot shows each
chart drawn with data. The screenshot and the page are kept in .artifacts/ (ignored by git)."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from agent_otel._cli import main
from agent_otel._ops.report.charts import CHARTS, chart_series
from agent_otel._ops.report.queries import Prometheus, default_selector
from tests.support.browser import Chromium
from tests.support.e2e import E2E
from tests.support.paths import ROOT
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / ".artifacts"
AGENTS = ("coder", "planner", "reviewer", "tester")
#: A chart with data has its lines in the colour cycle; axes, grid and text are grey or black.
MIN_COLOURED_PIXELS = 300


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", *args])
    return code, out.getvalue(), err.getvalue()


def coloured_pixels(image: Image.Image) -> int:
    """Pixels whose channels differ a lot: lines in a colour, not the white, grey or black of the frame."""
    data = image.convert("RGB").tobytes()
    return sum(1 for i in range(0, len(data), 3) if max(data[i:i + 3]) - min(data[i:i + 3]) > 80)


@pytest.fixture(scope="module")
def url(e2e: E2E) -> str:
    """The demo's Prometheus once every chart has a few points."""
    prometheus = e2e.stack.prometheus_url

    def charted() -> bool:
        e2e.demo_alive()
        series = chart_series(Prometheus(prometheus, time.time()), "1h", default_selector())
        return all(any(len(points) >= 3 for points in by_key.values()) for by_key in series.values())

    wait_until(charted, "every chart of the HTML report to have points", timeout_s=120)
    return prometheus


@pytest.fixture(scope="module")
def page(url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    code, out, err = run("--prometheus", url, "--format", "html", "--output", str(path))
    assert (code, out) == (0, ""), err
    return path


def test_the_detector_sees_console_errors_and_network_requests(tmp_path: Path) -> None:
    """The checks below can fail: a page that logs an error, throws and fetches a URL is caught on each count."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html><body><img src="http://example.invalid/x.png">'
                   '<script>console.error("deliberate"); undefinedFunction();</script></body></html>')
    with Chromium() as browser:
        browser.open(bad.as_uri())
        errors = browser.errors()
        requested = browser.requested_urls()
    assert any("deliberate" in error for error in errors), errors
    assert any("undefinedFunction" in error for error in errors), errors
    assert "http://example.invalid/x.png" in requested


def test_the_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert text.startswith("<!doctype html>")
    assert "<script" not in text
    references = re.findall(r"""\b(?:src|href|xlink:href)\s*=\s*["']([^"']*)["']""", text)
    assert references, "the charts' SVG refers to its own elements"
    assert all(ref.startswith(("#", "data:")) for ref in references), {r for r in references if r[:1] != "#"}
    assert "url(http" not in text and "@import" not in text
    assert text.count("<svg") == len(CHARTS)
    for title in ("Agents", "Providers", "Providers by model", "Evolution", "Current KPIs"):
        assert f"<h2>{title}</h2>" in text
    for agent in AGENTS:
        assert f"<td>{agent}</td>" in text


def test_chromium_loads_it_offline_without_errors_and_draws_every_chart(page: Path) -> None:
    with Chromium() as browser:
        browser.open(page.as_uri())
        errors = browser.errors()
        requested = browser.requested_urls()
        charts = browser.evaluate(
            "[...document.querySelectorAll('figure.chart')].map(f => {const s = f.querySelector('svg');"
            " const r = s && s.getBoundingClientRect(); return {id: f.id, box: r && "
            "[r.left + scrollX, r.top + scrollY, r.right + scrollX, r.bottom + scrollY]}})")
        screenshot = browser.screenshot(page.with_suffix(".png"))
    ARTIFACTS.mkdir(exist_ok=True)
    kept = shutil.copy(screenshot, ARTIFACTS / "report.png")
    shutil.copy(page, ARTIFACTS / "report.html")
    print(f"screenshot: {screenshot} (copied to {kept})")
    assert errors == []
    assert requested == [page.as_uri()]
    assert [chart["id"] for chart in charts] == [f"chart-{chart.key}" for chart in CHARTS]
    image = Image.open(screenshot)
    blank = coloured_pixels(Image.new("RGB", (400, 200), "white"))
    assert blank == 0
    for chart in charts:
        assert chart["box"], f"{chart['id']} has no chart"
        left, top, right, bottom = (round(v) for v in chart["box"])
        assert right - left > 300 and bottom - top > 100, chart
        assert coloured_pixels(image.crop((left, top, right, bottom))) >= MIN_COLOURED_PIXELS, chart["id"]


def test_without_output_the_page_goes_to_stdout(url: str) -> None:
    code, out, err = run("--prometheus", url, "--format", "html", "--window", "1d")
    assert code == 0, err
    assert out.startswith("<!doctype html>") and "last 1d" in out and out.count("<svg") == len(CHARTS)
