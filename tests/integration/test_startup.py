"""Start-up and shutdown: one clear message for each misconfiguration, clean stops.

Also one server per directory (the locks), the servers' logs (stderr in the
foreground, rotation), and `sector up`/`down`/`status` after something was
killed: adopt what runs, start what is missing, stop everything of a home.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sector.client import Client
from sector.cluster import Layout, LocalCluster, pid_alive, stop_home, write_conf
from sector.config import read_run_file
from tests.support import processes_of, wait_until


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
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"sector master: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_bad_config_line_names_the_file_and_line(layout: Layout) -> None:
    conf = layout.conf / "master.conf"
    conf.write_text(conf.read_text().replace("REPLICA_NUM\n\t1", "REPLICA_NUM\n\tmany"))
    line = conf.read_text().splitlines().index("REPLICA_NUM") + 1
    result = _run("-m", "sector.master", "--conf", str(layout.conf))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"sector master: {conf}:{line}: REPLICA_NUM must be a number, not 'many'"
    )


def test_value_without_a_key_is_reported(layout: Layout) -> None:
    conf = layout.conf / "slave.conf"
    conf.write_text("\t/orphan/value\n" + conf.read_text())
    result = _run("-m", "sector.slave", "--conf", str(layout.conf))
    assert result.returncode == 1
    assert f"{conf}:1: value given before any KEY line" in result.stderr


def test_unwritable_data_directory_stops_the_slave(layout: Layout, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = _run("-m", "sector.slave", "--conf", str(layout.conf), "--data", str(blocker / "data"))
    assert result.returncode == 1
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
        # two slaves: two replicas of every file, written into the new conf and said
        assert "REPLICA_NUM\n\t2\n" in (home / "conf" / "master.conf").read_text()
        said = [line for line in lines if line.lstrip().startswith("replicas ")]
        assert said and ": 2 of every file" in said[0] and "two slaves or more" in said[0], lines
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
        stop_home(home)  # children run in their own session: never leave them behind


def test_detach_status_down(tmp_path: Path) -> None:
    home = tmp_path / "bg"
    up = _sector("up", "--detach", "--port", "0", "--slaves", "1", home=home)
    output = up.communicate(timeout=60)[0]
    assert up.returncode == 0, output
    dashboard = re.search(r"  dashboard       : (http://127\.0\.0\.1:\d+/) \(log in", output)
    assert dashboard, output  # on 127.0.0.1 like the master, its port any free one
    status = _sector("status", home=home)
    status_out = status.communicate(timeout=30)[0]
    assert status.returncode == 0
    assert re.search(r"master\s+pid \d+\s+running", status_out)
    assert f"dashboard {dashboard.group(1)}" in status_out
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


# --- the conf `sector up` writes ------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sector_up_keeps_its_local_conveniences_private(layout: Layout) -> None:
    conf = layout.conf
    assert "PASSWORD\n\txxx\n" in (conf / "client.conf").read_text()  # PySector's sessions
    for name in ("client.conf", "users/test", "users/root", "root.password", "master_node.key"):
        assert mode(conf / name) == 0o600, name
    assert "xxx" not in (conf / "users" / "test").read_text().split("PASSWORD\n", 1)[1]
    assert mode(conf / "master.conf") == 0o644


def test_sector_up_makes_an_older_readable_client_conf_private(layout: Layout) -> None:
    (layout.conf / "client.conf").chmod(0o644)  # as `sector up` wrote it before
    assert write_conf(layout, port=0) is False  # reused, not rewritten ...
    assert mode(layout.conf / "client.conf") == 0o600  # ... but no longer readable by others


# --- every configuration file: one line naming the file and line, exit status 1 ------


BAD_LINES = {
    # file: (text appended, the server that reads it, its line's fragment of the message)
    "master.conf": ("REPLICATION_FACTOR 3\n", "master", "is not a KEY"),
    "slave.conf": ("# again\nSLAVE_PORT\n", "slave", "SLAVE_PORT is given twice"),
    "users/bob": ("PASSWORD\n\tx\nACL\n\t10.0.0.0/33\n", "master", "is not an IP address"),
    "master_acl.conf": ("300.1.1.1\n", "master", "'300.1.1.1' is not an IP address"),
    "slave_acl.conf": ("rack1\n", "master", "'rack1' is not an IP address"),
    "topology.conf": ("10.0.1.0/24\n", "master", "expected an IP or CIDR, then a /L1/L2"),
    "replica.conf": ("REPLICATION_NUMBER\n\t/a/*\tmany\n", "master", "'many' is not a whole"),
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_a_bad_line_in_any_server_file_stops_start_up_with_file_and_line(
    layout: Layout, name: str
) -> None:
    text, server, fragment = BAD_LINES[name]
    path = layout.conf / name
    before = path.read_text() if path.exists() else ""
    path.write_text(before + text)
    line = len(before.splitlines()) + len(text.splitlines())
    args = ["--conf", str(layout.conf), "--port", "0"]
    if server == "slave":
        args += ["--data", str(layout.home / "slaves" / "1")]
    result = _run("-m", f"sector.{server}", *args)
    assert result.returncode == 1
    [message] = result.stderr.splitlines()
    assert message.startswith(f"sector {server}: {path}:{line}: "), message
    assert fragment in message

    check = _sector_run("conf", "check", "--conf", str(layout.conf), home=layout.home)
    assert (check.returncode, check.stdout) == (1, "")
    assert check.stderr.splitlines() == [f"sector: {message.split(': ', 1)[1]}"]


def test_a_bad_client_conf_line_fails_every_client_command_in_one_line(layout: Layout) -> None:
    client_conf = layout.conf / "client.conf"
    client_conf.write_text("USERNAME test\n" + client_conf.read_text())
    expected = f"sector: {client_conf}:1: 'USERNAME test' is not a KEY; values go on the next line"
    for command in (["ls", "/"], ["df"], ["upload", __file__, "/x"], ["conf", "check"]):
        result = _sector_run(*command, home=layout.home)
        assert result.returncode == 1, command
        assert result.stderr.splitlines() == [expected + ", indented"], command


def test_sector_up_reports_a_bad_master_conf_in_one_line(layout: Layout) -> None:
    conf = layout.conf / "master.conf"
    conf.write_text(conf.read_text().replace("REPLICA_NUM\n\t1", "REPLICA_NUM\n\tmany"))
    line = conf.read_text().splitlines().index("REPLICA_NUM") + 1
    result = _sector_run("up", "--detach", "--port", "0", home=layout.home)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"sector: master failed to start: sector master: {conf}:{line}: "
        "REPLICA_NUM must be a number, not 'many'"
    ]
    assert processes_of(layout.home) == []


# --- one server per directory ---------------------------------------------------------


def test_a_second_slave_on_a_served_data_directory_refuses_naming_the_holder(
    cluster: LocalCluster,
) -> None:
    data = cluster.layout.slave_dir(1)
    holder = cluster.process("slave1").popen.pid
    result = _run(
        "-m", "sector.slave", "--conf", str(cluster.layout.conf), "--data", str(data),
        "--port", "0",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"sector slave: data directory {data} is in use by pid {holder} (lock slave.lock); "
        "stop that process first, or give another --data"
    ]
    # and the refused slave touched nothing of the running one's
    assert (data / "slave.addr").read_text().split()[2] == str(holder)
    assert (data / "slave.registered").exists()


def test_a_second_master_on_a_held_metadata_directory_refuses(cluster: LocalCluster) -> None:
    home = cluster.layout.master_home
    holder = cluster.process("master").popen.pid
    result = _run(
        "-m", "sector.master", "--conf", str(cluster.layout.conf), "--home", str(home),
        "--port", "0",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"sector master: metadata directory {home} is in use by pid {holder} "
        "(lock master.lock); stop that process first, or give another --home"
    ]
    assert (home / "master.addr").read_text().split()[2] == str(holder)


# --- logs -------------------------------------------------------------------------------


def test_a_foreground_master_logs_each_event_to_stderr_exactly_as_to_its_file(
    layout: Layout,
) -> None:
    master = subprocess.Popen(
        [sys.executable, "-m", "sector.master", "--conf", str(layout.conf), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = layout.master_home / "master.addr"
        wait_until(ready.exists, what="the master to listen")
        master.terminate()
        stderr = master.communicate(timeout=30)[1]
    finally:
        if master.poll() is None:
            master.kill()
    assert master.returncode == 0
    logged = (layout.master_home / "master.log").read_text()
    assert stderr == logged
    assert re.search(
        r"^\S+ \S+ INFO sector.master: master listening on 127.0.0.1:\d+", stderr, re.M
    )
    assert stderr.splitlines()[-1].endswith("INFO sector.master: master stopping")


def test_servers_started_by_sector_up_keep_stderr_for_start_up_failures(cluster) -> None:
    # They run with --no-log-stderr: their .stderr files would otherwise copy the logs.
    assert (cluster.layout.master_home / "master.stderr").read_text() == ""
    assert (cluster.layout.slave_dir(1) / "slave1.stderr").read_text() == ""


def test_the_master_log_rotates_at_log_max_size_keeping_log_backups(layout: Layout) -> None:
    conf = layout.conf / "master.conf"
    text = conf.read_text()
    text = text.replace("LOG_LEVEL\n\t3", "LOG_LEVEL\n\t9")
    text = text.replace("LOG_MAX_SIZE\n\t64", "LOG_MAX_SIZE\n\t2K")
    conf.write_text(text.replace("LOG_BACKUPS\n\t5", "LOG_BACKUPS\n\t2"))
    master = subprocess.Popen(
        [sys.executable, "-m", "sector.master", "--conf", str(layout.conf), "--port", "0",
         "--no-log-stderr"],
    )  # fmt: skip
    logs = layout.master_home
    try:
        ready = logs / "master.addr"
        wait_until(ready.exists, what="the master to listen")
        host, port = ready.read_text().split()[:2]
        with Client(host, int(port)) as client:
            client.login("test", "xxx", layout.cert)

            def rotated_twice() -> bool:
                for _ in range(20):
                    client.stat("/")  # each request is one DEBUG line at LOG_LEVEL 9
                return (logs / "master.log.2").exists() and (logs / "master.log").stat().st_size

            wait_until(rotated_twice, what="master.log to rotate twice")
            for _ in range(200):
                client.stat("/")
    finally:
        master.terminate()
        master.wait(timeout=30)
    names = sorted(path.name for path in logs.glob("master.log*"))
    assert names == ["master.log", "master.log.1", "master.log.2"]  # LOG_BACKUPS old files
    for name in names:
        text = (logs / name).read_text()
        assert len(text.encode()) <= 2048
        assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \w+ sector", line)
                   for line in text.splitlines()), name  # fmt: skip


# --- sector up / down / status after something was killed -----------------------------


def _sector_run(*args: str, home: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTOR_")}
    return subprocess.run(
        [sys.executable, "-c", "from sector.cli.main import main; main()", *args],
        env={**env, "SECTOR_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _up(home: Path, *args: str) -> str:
    result = _sector_run("up", "--detach", "--port", "0", *args, home=home)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _pids(home: Path) -> dict[str, int]:
    state = read_run_file(home)
    assert state is not None
    return state["pids"]


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), what=f"pid {pid} to die")


def test_up_after_the_master_was_killed_adopts_the_slaves_and_down_stops_all(
    tmp_path: Path,
) -> None:
    home = tmp_path / "adopt"
    try:
        _up(home)
        before = _pids(home)
        state = read_run_file(home)
        assert state is not None
        host, port = state["master"].rsplit(":", 1)
        with Client(host, int(port)) as client:
            client.login("test", "xxx", home / "conf" / "master_node.cert")
            client.mkdir("/kept")
            with client.open("/kept/file", 2) as out:
                out.write(b"still here")
        _kill(before["master"])

        status = _sector_run("status", home=home)
        assert status.returncode == 1
        assert re.search(rf"master\s+pid {before['master']}\s+NOT RUNNING", status.stdout)

        again = _sector_run("up", "--detach", "--port", "0", home=home)
        assert again.returncode == 0, again.stderr
        assert "adopted         : slave1, slave2, slave3 (already running); started: master" in (
            again.stdout
        )
        after = _pids(home)
        assert {n: after[n] for n in ("slave1", "slave2", "slave3")} == {
            n: before[n] for n in ("slave1", "slave2", "slave3")
        }
        assert after["master"] != before["master"]
        assert sorted(processes_of(home)) == sorted(after.values())  # no second set of slaves
        assert read_run_file(home)["master"] == state["master"]  # the port the slaves expect
        with Client(host, int(port)) as client:
            client.login("test", "xxx", home / "conf" / "master_node.cert")
            with client.open("/kept/file") as source:
                assert source.read() == b"still here"
            assert [s["status"] for s in client.sysinfo()["slaves"]] == ["alive"] * 3

        status = _sector_run("status", home=home)
        assert status.returncode == 0 and "NOT RUNNING" not in status.stdout

        down = _sector_run("down", home=home)
        assert down.stdout == "Stopped slave1, slave2, slave3, master.\n"
        wait_until(lambda: processes_of(home) == [], what="every process of the home to exit")
    finally:
        stop_home(home)


def test_up_starts_a_killed_slave_again_beside_the_running_servers(tmp_path: Path) -> None:
    home = tmp_path / "restart-slave"
    try:
        assert (
            _sector_run("up", "--detach", "--port", "0", "--slaves", "2", home=home).returncode == 0
        )
        before = _pids(home)
        _kill(before["slave2"])
        again = _sector_run("up", "--detach", "--port", "0", "--slaves", "2", home=home)
        assert again.returncode == 0, again.stderr
        assert "adopted         : master, slave1 (already running); started: slave2" in again.stdout
        after = _pids(home)
        assert (after["master"], after["slave1"]) == (before["master"], before["slave1"])
        assert pid_alive(after["slave2"]) and after["slave2"] != before["slave2"]
        assert sorted(processes_of(home)) == sorted(after.values())
    finally:
        stop_home(home)
    assert processes_of(home) == []


def test_up_refuses_when_all_runs_and_down_stops_servers_the_run_file_forgot(
    tmp_path: Path,
) -> None:
    home = tmp_path / "orphans"
    orphan = None
    try:
        assert (
            _sector_run("up", "--detach", "--port", "0", "--slaves", "1", home=home).returncode == 0
        )
        state = read_run_file(home)
        assert state is not None
        again = _sector_run("up", "--detach", "--port", "0", "--slaves", "1", home=home)
        assert again.returncode == 1
        assert again.stderr.splitlines() == [
            f"sector: a cluster is already running from {home} (master {state['master']}); "
            "`sector down` stops it"
        ]
        # A slave started by hand on a directory of the home, and a lost run file.
        data = home / "slaves" / "7"
        orphan = subprocess.Popen(
            [sys.executable, "-m", "sector.slave", "--conf", str(home / "conf"), "--data",
             str(data), "--master", state["master"], "--no-log-stderr"],
        )  # fmt: skip
        wait_until((data / "slave.registered").exists, what="the hand-started slave to register")
        (home / "cluster.json").unlink()

        status = _sector_run("status", home=home)
        assert re.search(rf"slave7\s+pid {orphan.pid}\s+running \(not started by", status.stdout)

        down = _sector_run("down", home=home)
        assert down.stdout == "Stopped slave1, slave7, master.\n"
        assert orphan.wait(timeout=30) == 0
        wait_until(lambda: processes_of(home) == [], what="every process of the home to exit")
    finally:
        if orphan is not None and orphan.poll() is None:
            orphan.kill()
        stop_home(home)


def test_up_refuses_beside_a_foreground_up_and_down_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "fg-down"
    up = _sector("up", "--port", "0", "--slaves", "1", home=home)
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if "Press Ctrl-C" in line:
                break
        second = _sector_run("up", "--detach", "--port", "0", "--slaves", "1", home=home)
        assert second.returncode == 1
        assert second.stderr.splitlines() == [
            f"sector: `sector up` (pid {up.pid}) runs the cluster of {home} in the foreground; "
            "press Ctrl-C there, or run `sector down`"
        ]
        down = _sector_run("down", home=home)
        assert down.returncode == 0
        rest = up.communicate(timeout=60)[0]
        assert up.returncode == 0 and "Stopped." in rest
        wait_until(lambda: processes_of(home) == [], what="every process of the home to exit")
    finally:
        if up.poll() is None:
            up.kill()
        stop_home(home)
