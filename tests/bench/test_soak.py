"""The soak run (``python -m bench.soak``): faults under load, then every byte checked.

Slow (minutes), so deselected by default: ``pytest -m slow tests/bench/test_soak.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_soak_under_faults_loses_no_file() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "3", "--seed", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "files lost:           0" in done.stdout
    assert "0 wrong bytes" in done.stdout
