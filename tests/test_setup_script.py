"""scripts/setup.sh installs once per set of requirements: ./run.sh after ./test.sh installs nothing
(a reinstall would run `pip install -e .` again, which points a shared .venv at whichever
checkout ran it). Run against a copy of the script with a fake .venv/bin/python that logs."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKE_PYTHON = '#!/usr/bin/env bash\necho "$*" >> "$(dirname "$0")/../calls.log"\n'


def checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    for name in ("requirements.txt", "requirements-test.txt", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def setup(root: Path, *requirements: str) -> list[str]:
    """Run setup.sh; return the pip commands it ran (the fake python's new log lines)."""
    log = root / ".venv" / "calls.log"
    before = log.read_text().splitlines() if log.exists() else []
    subprocess.run(["bash", str(root / "scripts" / "setup.sh"), *requirements], check=True, cwd=root)
    after = log.read_text().splitlines() if log.exists() else []
    return after[len(before):]


def test_run_after_test_installs_nothing_and_a_change_reinstalls(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    first = setup(root, "requirements-test.txt")
    assert "-m pip install -q -r requirements-test.txt" in first
    assert "-m pip install -q --no-deps -e ." in first
    assert setup(root) == []  # run.sh's requirements.txt: included in the test requirements
    assert setup(root, "requirements-test.txt") == []
    with open(root / "pyproject.toml", "a") as f:
        f.write("\n# changed\n")
    assert "-m pip install -q -r requirements.txt" in setup(root)
    assert "-m pip install -q -r requirements-test.txt" in setup(root, "requirements-test.txt")


def test_the_test_requirements_include_the_app_requirements() -> None:
    # what lets setup.sh count an install of requirements-test.txt as one of requirements.txt
    assert "-r requirements.txt" in (REPO / "requirements-test.txt").read_text().splitlines()
