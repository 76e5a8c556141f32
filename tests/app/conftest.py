"""Fixtures for the app tests: real run folders made once per session with the core's smoke
preset, and copies of them for tests that change or multiply runs."""
from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ddcore import jobs, runstore
from ddcore.config import preset
from ddcore.pipeline import execute_run

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app.py"


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only store with a finished smoke vanilla/reweighted pair and its full-data baseline.
    Tests that modify runs copy it first (see `store_copy`)."""
    root = tmp_path_factory.mktemp("smoke-runs")
    cfg = preset("smoke")
    for name, run_cfg in (
        ("smoke-kde", cfg),
        ("smoke-none", cfg.with_overrides(reweight="none")),
        ("smoke-baseline", cfg.with_overrides(kind="baseline")),
    ):
        execute_run(runstore.create_run(root / name, run_cfg))
    return root


@pytest.fixture
def store_copy(smoke_store: Path, tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    shutil.copytree(smoke_store, root)
    return root


@pytest.fixture
def stop_workers() -> Iterator[Callable[[Path], None]]:
    """`stop_workers(root)` ends the worker an app under test started for `root`; it runs again
    at teardown, so a failing test leaves no worker behind."""
    roots: list[Path] = []

    def stop(root: Path) -> None:
        roots.append(root)
        jobs.stop_worker(root)

    yield stop
    for root in roots:
        jobs.stop_worker(root)


@pytest.fixture
def no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest runs pages in this process: keep them from starting background workers, so
    submitted runs simply stay queued for the test to inspect."""
    monkeypatch.setattr(jobs, "ensure_worker", lambda root: None)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, no_worker: None) -> Callable[[Path], AppTest]:
    """`app(root)`: the whole app (sidebar + navigation) pointed at `root` through DDCORE_RUNS,
    as a user would start it, already run once on its default page."""

    def make(root: Path) -> AppTest:
        monkeypatch.setenv("DDCORE_RUNS", str(root))
        return AppTest.from_file(str(APP), default_timeout=60).run()

    return make


def open_page(at: AppTest, page: str) -> AppTest:
    """Switch to `page`, run it, and fail on any exception it raised."""
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def goto() -> Callable[[AppTest, str], AppTest]:
    return open_page
