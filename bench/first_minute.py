"""From `./run.sh` on a fresh clone to the story page fully drawn, in Chromium.

    python bench/first_minute.py [--repeat 3]

Clones this repository's committed HEAD into a temporary folder (its .venv linked to this one's,
set up already: the first `./run.sh` of a real clone installs the packages, minutes that this does
not measure), starts the clone's `./run.sh` with an empty runs folder, and opens the landing page
in Debian's Chromium (Playwright, launched before the clock starts) as soon as the server answers.
Prints the seconds from starting run.sh to the server answering and to the story page fully drawn:
its three pictures decoded and its map plotted (the browser test's `wait_drawn`). Target: 20 s
on 2 CPU cores. Run it with nothing else busy.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from ddcore import hardware

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SETUP_INPUTS = ("requirements.txt", "pyproject.toml")  # what scripts/setup.sh hashes for run.sh
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STORY_DRAWN = """() => {
    const images = [...document.querySelectorAll('[data-testid=stImage] img')]
        .filter(e => e.complete && e.naturalWidth > 0);
    return images.length >= 3 && document.querySelector('.js-plotly-plot .main-svg') !== null
        && !document.querySelector('[data-testid=stSkeleton]');
}"""


def fresh_clone(folder: Path) -> Path:
    """A clone of HEAD whose .venv is this checkout's. Its run.sh must find that .venv set up for
    its own requirements.txt and pyproject.toml: were it to install, `pip install -e .` would point
    this checkout's ddcore at the clone, deleted when this script ends."""
    subprocess.run([str(REPO / "scripts" / "setup.sh"), "requirements.txt"], check=True)
    clone = folder / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True)
    for name in SETUP_INPUTS:
        if (clone / name).read_bytes() != (REPO / name).read_bytes():
            raise SystemExit(f"error: {name} differs from HEAD's; commit it first (the clone would "
                             "reinstall into this checkout's .venv)")
    (clone / ".venv").symlink_to((REPO / ".venv").resolve(), target_is_directory=True)
    return clone


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def once(browser, clone: Path, folder: Path) -> tuple[float, float]:
    port, runs = free_port(), folder / f"runs-{time.monotonic_ns()}"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.monotonic()
    proc = subprocess.Popen([str(clone / "run.sh")], cwd=clone, start_new_session=True,
                            env={**os.environ, "DDCORE_RUNS": str(runs), "PORT": str(port)},
                            stdout=open(folder / "app.log", "ab"), stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() - start > 120:
                    log = (folder / "app.log").read_text()[-2000:]
                    raise SystemExit(f"error: the app did not start: {log}") from None
                time.sleep(0.05)
        ready = time.monotonic() - start
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function(STORY_DRAWN, timeout=120_000, polling=50)
        return ready, time.monotonic() - start
    finally:
        page.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh servers (and runs folders) in a row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ddbias-first-minute-") as tmp, sync_playwright() as p:
        folder = Path(tmp)
        clone = fresh_clone(folder)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        commit = subprocess.check_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], text=True).strip()
        print(f"{time.strftime('%Y-%m-%d')} · {os.cpu_count()} CPU cores · CPU capability "
              f"{hardware.cpu_capability()} · commit {commit}")
        print("| try | run.sh -> server answers (s) | run.sh -> story drawn (s) |")
        print("|---|---|---|")
        for i in range(args.repeat):
            ready, drawn = once(browser, clone, folder)
            print(f"| {i + 1} | {ready:.1f} | {drawn:.1f} |", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
