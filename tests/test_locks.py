"""One server per directory: the lock a second process cannot take, and who holds it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sector.locks import DirectoryInUse, Holder, acquire, recorded_holder

# POSIX locks belong to a process (a second lock by the same process always succeeds),
# so the holder is a real second process: it locks, says so, and waits for stdin to close.
HOLD = """
import sys
from pathlib import Path
from sector.locks import acquire
acquire(Path(sys.argv[1]), "slave.lock")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "locked\n"
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_held_directory_is_refused_naming_the_holders_pid(
    tmp_path: Path, holder: subprocess.Popen
) -> None:
    with pytest.raises(DirectoryInUse) as caught:
        acquire(tmp_path, "slave.lock")
    assert caught.value.holder == Holder(holder.pid, socket.gethostname())
    assert str(caught.value) == f"{tmp_path} is in use by pid {holder.pid} (lock slave.lock)"


def test_the_lock_is_free_again_once_its_holder_exits(
    tmp_path: Path, holder: subprocess.Popen
) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    lock = acquire(tmp_path, "slave.lock")
    try:
        assert recorded_holder(tmp_path / "slave.lock") == Holder(os.getpid(), socket.gethostname())
    finally:
        lock.release()


def test_the_record_names_the_host_when_it_is_another_machine() -> None:
    assert Holder(42, socket.gethostname()).describe() == "pid 42"
    assert Holder(42, "node7.example").describe() == "pid 42 on host node7.example"


def test_a_lock_file_without_a_record_reads_as_no_holder(tmp_path: Path) -> None:
    (tmp_path / "empty.lock").write_bytes(b"")
    (tmp_path / "junk.lock").write_bytes(b"\xff\xfe not a pid")
    assert recorded_holder(tmp_path / "empty.lock") is None
    assert recorded_holder(tmp_path / "junk.lock") is None
    assert recorded_holder(tmp_path / "absent.lock") is None
