"""From the click on "Run vanilla + reweighted" to both results shown, in a real browser.

    python bench/app_click.py [--preset quick] [--timeout 900] [--keep]

Starts the app exactly as `./run.sh` does (its own port and an empty runs folder through
DDCORE_RUNS, in a temporary folder kept only with --keep or on a failure), opens the Distill page
in Debian's Chromium (Playwright), picks the preset, clicks "Run vanilla + reweighted" and waits
until the jobs panel shows both runs done. Prints the seconds from the click to both results, and
the CPU seconds the Streamlit server itself used over that time (the background worker, a separate
process, does the work; the server should stay idle). It also prints what the measurement itself
costs: the CPU seconds of the browser and of the Playwright driver over the same time (they share
the machine with the worker; the harness checks the page once a second, the app's own refresh
interval being 5 s), how many worker processes it saw serving the runs folder (one: more is
bench/RESULTS.md 17's fault), and each run's seconds per stage. Run it with nothing else busy: on
2 cores anything else running inflates every figure.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from ddcore import hardware, jobs, runstore
from ddcore.records import Metrics

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    found, frontier = [], [pid]
    while frontier:
        children = [c for c, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def harness_seconds(server: int) -> float:
    """CPU seconds so far of this process's live descendants (the browser, the Playwright driver),
    the app's server and what it started (the worker) left out."""
    app = {server, *descendants(server)}
    total = 0.0
    for pid in descendants(os.getpid()):
        if pid not in app:
            try:
                total += cpu_seconds(pid)
            except OSError:
                continue  # gone meanwhile
    return total


def workers(root: Path) -> set[int]:
    """The pids of live `ddcore worker` processes serving `root` (Linux /proc)."""
    wanted = f"-m\0ddcore\0worker\0--runs\0{root}\0".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue  # gone meanwhile
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(root: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([str(REPO / "run.sh")], cwd=REPO, env={**os.environ, "DDCORE_RUNS": str(root),
                                                                  "PORT": str(port)},
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"error: the app did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temporary runs folder and server log")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="app-click-"))
    root, port = work / "runs", free_port()
    server = start_app(root, port, work / "streamlit.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/distill")
            page.get_by_test_id("stSelectbox").filter(has_text="Preset").click()
            page.get_by_role("option", name=args.preset, exact=True).click()
            expect(page.locator('input[aria-label="Images per class (IPC)"]')).to_have_count(1, timeout=30_000)
            page.wait_for_timeout(1000)  # the preset's rerun refills the form before the click
            cpu_before, start = cpu_seconds(server.pid), time.perf_counter()
            harness_before = harness_seconds(server.pid)
            page.get_by_role("button", name="Run vanilla + reweighted").click()
            expect(page.get_by_text(re.compile(r"^Queued "))).to_be_visible(timeout=30_000)
            done = page.get_by_text("done · took")
            seen = workers(root)
            while done.count() < 2:
                seen |= workers(root)
                if page.get_by_text("Failed:").count():
                    raise SystemExit(f"error: a run failed: {page.get_by_text('Failed:').first.inner_text()} "
                                     f"(runs and server log kept in {work})")
                if time.perf_counter() - start > args.timeout:
                    raise SystemExit(f"error: both results were not shown within {args.timeout:.0f} s "
                                     f"(runs and server log kept in {work})")
                page.wait_for_timeout(1000)
            seconds = time.perf_counter() - start
            server_cpu = cpu_seconds(server.pid) - cpu_before
            harness_cpu = harness_seconds(server.pid) - harness_before
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        jobs.stop_worker(root)
    kept = f"runs in {root}" if args.keep else "runs removed (--keep keeps them)"
    print(f"{time.strftime('%Y-%m-%d')} | preset {args.preset} | CPU capability {hardware.cpu_capability()}, "
          f"{hardware.usable_cpus()} CPUs | {kept}\n")
    print("| click to both results shown | server CPU seconds | server CPU share of one core | browser + driver CPU seconds "
          "| worker processes seen |")
    print("|---|---|---|---|---|")
    print(f"| {seconds:.0f} s | {server_cpu:.1f} | {100 * server_cpu / seconds:.1f}% | {harness_cpu:.1f} | {len(seen)} |")
    print("\n| run | seconds | seconds per stage |\n|---|---|---|")
    for info in sorted(runstore.list_runs(root), key=lambda r: r.status.created):
        m = Metrics.load(info.path)
        if m is not None and m.seconds_total is not None:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in m.seconds_per_stage.items())
            print(f"| {runstore.read_config(info.path).reweight.reweight} | {m.seconds_total:.0f} | {stages} |")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
