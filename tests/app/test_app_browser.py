"""End to end in a real browser: Debian's chromium driven by Playwright against `streamlit run`.

Submits a smoke vanilla + reweighted pair from the Distill page, waits for the background worker
to finish both, then checks the embedding map (including a lasso selection) and the synthetic
grids. Screenshots (of the viewport: Streamlit scrolls inside the page, so a full-page shot adds
nothing) go to test-artifacts/ for a human to look at.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
RUNS_TIMEOUT_MS = 150_000  # two smoke runs on 2 CPU cores, with room to spare


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path, stop_workers) -> Iterator[str]:
    """`streamlit run app.py` on a free localhost port with its own empty runs folder."""
    root, port = tmp_path / "runs", free_port()
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=REPO, env={**os.environ, "DDCORE_RUNS": str(root)}, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()}") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        stop_workers(root)


@pytest.fixture
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium`")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def choose(page: Page, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_submit_pair_then_see_map_and_images(server: str, page: Page) -> None:
    page.goto(f"{server}/distill")
    choose(page, "Preset", "smoke")
    # the preset refills the form; submitting before that rerun lands would use the old values
    # (during a rerun Streamlit briefly shows the stale widget next to the new one)
    ipc = page.locator('input[aria-label="Images per class (IPC)"]')  # not its help icon, labelled alike
    expect(page.locator('input[aria-label="Images per class (IPC)"][value="2"]')).to_be_attached()
    expect(ipc).to_have_count(1)
    expect(ipc).to_have_value("2")
    page.get_by_role("button", name="Run vanilla + reweighted").click()
    expect(page.get_by_text(re.compile(r"^Queued "))).to_be_visible(timeout=30_000)

    # the jobs panel refreshes itself; both runs must end as done, never failed
    done = page.get_by_text("done · took")
    deadline = time.time() + RUNS_TIMEOUT_MS / 1000
    while done.count() < 2:
        assert page.get_by_text("Failed:").count() == 0, page.get_by_text("Failed:").first.inner_text()
        assert time.time() < deadline, "the smoke pair did not finish in time"
        page.wait_for_timeout(1000)
    page.screenshot(path=ARTIFACTS / "distill.png")

    page.get_by_role("button", name="Open map", exact=True).first.click()  # from a finished job's card
    expect(page).to_have_url(re.compile(r"/embedding_map$"), timeout=30_000)
    plot = page.locator(".js-plotly-plot")
    expect(plot).to_be_visible(timeout=30_000)
    expect(plot.locator("canvas").first).to_be_attached()  # WebGL scatter
    # lasso most of the plot area (the lasso tool is in the modebar; a drag zooms): the selected real
    # samples appear below it, the others turn grey
    plot.hover()
    plot.locator('.modebar-btn[data-val="lasso"]').first.click()
    box = plot.locator(".nsewdrag").first.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + 0.05 * w, y0 + 0.05 * h)
    page.mouse.down()
    for fx, fy in ((0.95, 0.05), (0.95, 0.95), (0.05, 0.95), (0.05, 0.06)):
        page.mouse.move(x0 + fx * w, y0 + fy * h, steps=8)
    page.mouse.up()
    page.screenshot(path=ARTIFACTS / "embedding_map.png")
    selected = page.get_by_text("selected real samples")
    expect(selected).to_be_visible(timeout=30_000)
    selected.scroll_into_view_if_needed()
    expect(page.get_by_test_id("stImage").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "embedding_map_selection.png")

    page.goto(f"{server}/distill")
    page.get_by_role("button", name="Open images", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/synthetic_images$"), timeout=30_000)
    grids = page.get_by_test_id("stImage").locator("img")
    expect(grids).to_have_count(2, timeout=30_000)
    page.wait_for_function(  # both grids actually decoded, not just their <img> tags present
        "() => [...document.querySelectorAll('[data-testid=stImage] img')]"
        ".filter(img => img.complete && img.naturalWidth > 0).length == 2"
    )
    page.screenshot(path=ARTIFACTS / "synthetic_images.png")


# every page on a fresh start: an empty runs folder, the shipped examples


PAGES = ("", "bias_explorer", "distill", "embedding_map", "synthetic_images", "compare", "sweeps", "runs")
DRAWN = {  # a page is drawn when these are on it
    "": ("[data-testid=stImage] img", 3, True),  # the story's three pictures, and its map below
    "bias_explorer": ("[data-testid=stImage] img", 2, False),
    "embedding_map": ("[data-testid=stImage] img", 17, True),  # a synthetic image and its 2 x 8 neighbours
    "synthetic_images": ("[data-testid=stImage] img", 2, False),
    "compare": (".js-plotly-plot", 4, True),  # the bars and three heat maps
    "runs": ("[data-testid=stDataFrame]", 1, False),
}


def wait_drawn(page: Page, path: str, timeout_ms: int = 60_000) -> None:
    """Until the page's images are decoded and its plots drawn (the map's WebGL canvas included)."""
    selector, count, plot = DRAWN.get(path, ("h1", 1, False))
    page.wait_for_function(
        """([selector, count, plot]) => {
            const found = [...document.querySelectorAll(selector)]
                .filter(e => e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0));
            const plotted = !plot || document.querySelector('.js-plotly-plot .main-svg') !== null;
            return found.length >= count && plotted && !document.querySelector('[data-testid=stSkeleton]');
        }""",
        arg=[selector, count, plot], timeout=timeout_ms,
    )


def click_a_real_point(page: Page) -> None:
    """Click the rarest real sample of the map where plotly drew it (data -> pixel through the
    plot's axes), hovering first: plotly clicks the point it last hovered."""
    x, y = page.evaluate(
        """() => {
            const plot = document.querySelector('.js-plotly-plot');
            const trace = plot._fullData.find(t => t.meta === 'real');  // x and y decoded from the spec
            const layout = plot._fullLayout, box = plot.getBoundingClientRect();
            const last = trace.x.length - 1;  // drawn last: the rarest sample, on top of the others
            return [box.left + layout._size.l + layout.xaxis.l2p(trace.x[last]),
                    box.top + layout._size.t + layout.yaxis.l2p(trace.y[last])];
        }"""
    )
    page.mouse.move(x, y)
    page.wait_for_timeout(500)
    page.mouse.click(x, y)


def test_first_start_shows_every_page_from_the_examples(server: str, page: Page) -> None:
    for path in PAGES:
        page.goto(f"{server}/{path}")
        expect(page.locator("h1").first).to_be_visible(timeout=60_000)
        wait_drawn(page, path)
        assert page.get_by_text(re.compile("No finished|No runs yet")).count() == 0, path
        assert page.get_by_test_id("stException").count() == 0, path
        page.screenshot(path=ARTIFACTS / f"first-start-{path or 'story'}.png")
        if path == "":
            for step in ("1 · The bias", "2 · Distillation amplifies it", "3 · Reweighting repairs it"):
                expect(page.get_by_text(step)).to_be_visible()
    page.goto(f"{server}/embedding_map")
    wait_drawn(page, "embedding_map")
    click_a_real_point(page)
    clicked = page.get_by_text(re.compile("^real sample · class"))  # the clicked point's caption
    expect(clicked).to_be_visible(timeout=30_000)
    clicked.scroll_into_view_if_needed()
    expect(page.get_by_text("Nearest in pixel space")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "first-start-map-clicked-point.png")
