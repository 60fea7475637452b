"""Run the installed ``sector`` executable against real clusters.

Every test here drives the command a person types, in a subprocess, with a
clean environment: ``SECTOR_HOME`` points at the cluster's state directory
(whose ``client.conf`` and ``cluster.json`` say where the master is and as
whom to log in), and no other ``SECTOR_*`` variable leaks in from outside.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sector.cluster import LocalCluster

# The console script installed beside this interpreter, so the tests run the
# same installation they import; PATH is only a fallback.
_BESIDE = Path(sys.executable).parent / "sector"
_EXECUTABLE = str(_BESIDE) if _BESIDE.exists() else shutil.which("sector")
COMMAND = [_EXECUTABLE] if _EXECUTABLE else [sys.executable, "-m", "sector.cli.main"]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTOR_")}
    env.update(SECTOR_HOME=str(home), **extra)
    return env


@dataclass
class Sector:
    """``sector(*args)`` runs the command; ``ok`` and ``fails`` also check how it ended."""

    env: dict[str, str]
    cwd: Path | None = None
    timeout: float = 120
    extra: dict[str, str] = field(default_factory=dict)

    def __call__(
        self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*COMMAND, *args],
            input=input,
            capture_output=True,
            env={**self.env, **(env or {})},
            cwd=self.cwd,
            timeout=self.timeout,
        )
        return subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )

    def ok(self, *args: str, **kwargs) -> str:
        """Stdout of a command that must succeed (and say nothing on stderr)."""
        result = self(*args, **kwargs)
        assert result.returncode == 0, f"sector {' '.join(args)} failed: {result.stderr}"
        assert result.stderr == "", result.stderr
        return result.stdout

    def fails(self, *args: str, **kwargs) -> str:
        """The one stderr line of a command that must fail with status 1, sans traceback."""
        result = self(*args, **kwargs)
        assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([*COMMAND, *args], env=self.env, cwd=self.cwd, **kwargs)


def sector_for(cluster: LocalCluster, cwd: Path | None = None, **extra: str) -> Sector:
    return Sector(clean_env(cluster.layout.home, **extra), cwd=cwd)


@pytest.fixture
def sector(cluster: LocalCluster, tmp_path: Path) -> Sector:
    """The CLI as user ``test`` on the shared cluster, run from a fresh local directory."""
    return sector_for(cluster, cwd=tmp_path)


@pytest.fixture
def remote(workdir: str) -> str:
    """This test's own Sector directory on the shared cluster."""
    return workdir
