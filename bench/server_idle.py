"""What the app server itself costs while a job runs: its CPU share with a page open in Chromium.

    python bench/server_idle.py [--seconds 60] [--page distill] [--profile OUT.txt]

Starts the app as `./run.sh` does on an empty runs folder holding one run that a stand-in job (this
script's child, no torch work) keeps "running": it holds the run's lock and writes a new progress to
status.json every 0.5 s, as a DM run does. Opens the page in Debian's Chromium, waits until it is
drawn, then reports the server's CPU seconds over `--seconds`. With --profile, py-spy samples the
server meanwhile and its top functions go to the file. Target (issue 9): at most 5% of one core.
"""
from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app_click import (  # bench/, beside this script
    CHROMIUM,
    CHROMIUM_ARGS,
    cpu_seconds,
    free_port,
    start_app,
)
from playwright.sync_api import sync_playwright

from ddcore import hardware, runstore
from ddcore.config import preset


def stand_in_job(run_dir: Path, seconds: float) -> None:
    with runstore.running(run_dir):
        runstore.update_status(run_dir, state="running", stage="distill", started=time.time())
        start = time.time()
        while time.time() - start < seconds:
            done = (time.time() - start) / seconds
            runstore.update_status(run_dir, progress=done, iteration=int(300 * done), iterations=300, loss=1.0)
            time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--page", default="distill", help="the page's URL path (distill, runs, ...)")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy's top functions to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="server-idle-") as tmp:
        root = Path(tmp) / "runs"
        run_dir = runstore.create_run(root / "stand-in", preset("quick"))
        job = multiprocessing.get_context("spawn").Process(target=stand_in_job, args=(run_dir, args.seconds + 120))
        job.start()
        port = free_port()
        server = start_app(root, port, Path(tmp) / "server.log")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page()
                url = f"http://127.0.0.1:{port}/{args.page}"
                page.goto(url)
                page.get_by_text("Jobs").first.wait_for(timeout=60_000)
                time.sleep(5)  # the page settles
                spy = None
                if args.profile:
                    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.pid), "--duration",
                                            str(int(args.seconds)), "--format", "raw", "-o", str(args.profile)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                before, start = cpu_seconds(server.pid), time.perf_counter()
                time.sleep(args.seconds)
                used, wall = cpu_seconds(server.pid) - before, time.perf_counter() - start
                if spy is not None:
                    spy.wait()
                browser.close()
        finally:
            server.terminate()
            job.terminate()
    print(f"{time.strftime('%Y-%m-%d')} | page /{args.page} ({url}) | CPU capability {hardware.cpu_capability()}, "
          f"{hardware.usable_cpus()} CPUs\n")
    print("| seconds | server CPU seconds | share of one core |\n|---|---|---|")
    print(f"| {wall:.0f} | {used:.1f} | {100 * used / wall:.1f}% |")


if __name__ == "__main__":
    main()
