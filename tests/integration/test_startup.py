"""Start-up and shutdown: one clear message for each misconfiguration, clean stops."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sector.cluster import Layout, pid_alive, stop_detached, write_conf
from sector.config import read_run_file
from tests.support import wait_until


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "home")
    write_conf(layout, port=0)
    return layout


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def test_master_on_a_port_in_use_stops_with_one_clear_line(layout: Layout) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("-m", "sector.master", "--conf", str(layout.conf), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"sector master: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_bad_config_line_names_the_file_and_line(layout: Layout) -> None:
    conf = layout.conf / "master.conf"
    conf.write_text(conf.read_text().replace("REPLICA_NUM\n\t1", "REPLICA_NUM\n\tmany"))
    line = conf.read_text().splitlines().index("REPLICA_NUM") + 1
    result = _run("-m", "sector.master", "--conf", str(layout.conf))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"sector master: {conf}:{line}: REPLICA_NUM must be a number, not 'many'"
    )


def test_value_without_a_key_is_reported(layout: Layout) -> None:
    conf = layout.conf / "slave.conf"
    conf.write_text("\t/orphan/value\n" + conf.read_text())
    result = _run("-m", "sector.slave", "--conf", str(layout.conf))
    assert result.returncode == 2
    assert f"{conf}:1: value given before any KEY line" in result.stderr


def test_unwritable_data_directory_stops_the_slave(layout: Layout, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = _run("-m", "sector.slave", "--conf", str(layout.conf), "--data", str(blocker / "data"))
    assert result.returncode == 2
    assert result.stderr.startswith("sector slave: data directory")
    assert "not writable" in result.stderr


def test_servers_log_with_timestamps_at_the_configured_level(cluster) -> None:
    master_log = (cluster.layout.master_home / "master.log").read_text()
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO sector.master: master listening",
        master_log,
        re.M,
    )
    slave_log = (cluster.layout.slave_dir(1) / "slave.log").read_text()
    assert "registered with master" in slave_log


def _sector(*args: str, home: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "SECTOR_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-c", "from sector.cli.main import main; main()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_sector_up_in_the_foreground_stops_every_child_on_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "fg"
    up = _sector("up", "--port", "0", "--slaves", "2", home=home)
    try:
        assert up.stdout is not None
        lines = []
        for line in up.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        assert "bound to 127.0.0.1 only" in lines[0], lines
        assert (home / "conf" / "master_node.cert").exists()
        state = read_run_file(home)
        assert state is not None
        pids = list(state["pids"].values())
        assert len(pids) == 3 and all(pid_alive(pid) for pid in pids)
        up.send_signal(signal.SIGINT)
        rest = up.communicate(timeout=30)[0]
        assert up.returncode == 0, rest
        assert "Stopped." in rest
        wait_until(lambda: not any(pid_alive(pid) for pid in pids), what="children to exit")
        assert read_run_file(home) is None
    finally:
        if up.poll() is None:
            up.kill()
        stop_detached(home)  # children run in their own session: never leave them behind


def test_detach_status_down(tmp_path: Path) -> None:
    home = tmp_path / "bg"
    up = _sector("up", "--detach", "--port", "0", "--slaves", "1", home=home)
    output = up.communicate(timeout=60)[0]
    assert up.returncode == 0, output
    status = _sector("status", home=home)
    status_out = status.communicate(timeout=30)[0]
    assert status.returncode == 0
    assert re.search(r"master\s+pid \d+\s+running", status_out)
    conf_before = (home / "conf" / "master.conf").read_text()
    down = _sector("down", home=home)
    assert "Stopped slave1, master." in down.communicate(timeout=60)[0]
    status = _sector("status", home=home)
    assert "No local cluster is running." in status.communicate(timeout=30)[0]
    assert status.returncode == 1
    # The conf directory is kept and reused unchanged by the next `sector up`.
    again = _sector("up", "--detach", "--port", "0", "--slaves", "1", home=home)
    assert again.wait(timeout=60) == 0
    assert (home / "conf" / "master.conf").read_text() == conf_before
    _sector("down", home=home).wait(timeout=60)
