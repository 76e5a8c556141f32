import os
from pathlib import Path

import pytest
import torch

# Numba reads this when UMAP first loads it (later, in a test). Unset, UMAP's first fit resets
# torch's thread count to numba's default (all cores), and results depend on the thread count
# (the sweep tests compare two backends' runs)
os.environ.setdefault("NUMBA_NUM_THREADS", str(min(2, os.cpu_count() or 1)))
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `cuda` need a GPU: skipped where none is visible, said so in the summary."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (bench/gpu_check.sh runs these on a GPU)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only runs root holding the shipped `smoke` sweep, finished through the local backend
    (its job queue, the worker run in this process). One torch thread, as each Ray task of the
    Ray test has, so the two backends' results can be compared exactly."""
    from ddcore import jobs
    from ddcore.sweeps.backends import LocalBackend, run_sweep
    from ddcore.sweeps.spec import load_spec

    root = tmp_path_factory.mktemp("smoke-sweep")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(root, load_spec("smoke"), LocalBackend(start_worker=False))
        jobs.run_worker(root, poll_seconds=0.05, idle_exit_seconds=0.2)
    finally:
        torch.set_num_threads(threads)
    return root
