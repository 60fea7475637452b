"""The PySector examples (examples/read.py, examples/sectorgrep.py, examples/demo.sh),
run as a person runs them: as scripts, against a real cluster."""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from tests.support import PASSWORD, USER, connect

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT_TIMEOUT = 60
DEMO_TIMEOUT = 180


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment without any Sector settings of the person running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTOR_")}
    env["SECTOR_HOME"] = str(home)
    env.update(extra)
    return env


def run_script(
    name: str, *args: str, env: dict[str, str], timeout: float = SCRIPT_TIMEOUT
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )


@pytest.fixture
def run(cluster: LocalCluster, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """Run an example with explicit --master/--user/--password/--cert options.

    ``SECTOR_HOME`` points at an empty directory, so nothing is found by accident.
    """
    assert cluster.master_address is not None
    options = [
        "--master",
        "{}:{}".format(*cluster.master_address),
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--cert",
        str(cluster.layout.cert),
    ]
    empty_home = tmp_path / "empty-home"
    empty_home.mkdir()

    def run_example(name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        return run_script(name, *options, *args, env=clean_env(empty_home))

    return run_example


def upload(client: Client, tmp_path: Path, remote: str, data: bytes) -> None:
    local = tmp_path / ("upload-" + remote.rsplit("/", 1)[1])
    local.write_bytes(data)
    client.upload(local, remote)


def reference_grep(data: bytes, pattern: bytes, flags: int = 0) -> list[bytes]:
    """What grep prints for ``data``: the matching lines, each with its newline."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line + b"\n" for line in lines if re.search(pattern, line, flags)]


# --- read.py ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", ["1000", None], ids=["1000-byte-reads", "default-reads"])
def test_read_copies_a_binary_file_byte_for_byte(
    run, client: Client, workdir: str, tmp_path: Path, chunk_size: str | None
) -> None:
    data = random.Random(1).randbytes(250_001) + b"\x00" * 999
    upload(client, tmp_path, f"{workdir}/blob.bin", data)
    dest = tmp_path / "copy.bin"
    extra = ["--chunk-size", chunk_size] if chunk_size else []
    result = run("read.py", *extra, f"{workdir}/blob.bin", str(dest))
    assert result.returncode == 0, result.stderr.decode()
    assert dest.read_bytes() == data
    assert b"251000 bytes" in result.stdout


def test_read_copies_an_empty_file(run, client: Client, workdir: str, tmp_path: Path) -> None:
    upload(client, tmp_path, f"{workdir}/empty", b"")
    dest = tmp_path / "copy"
    result = run("read.py", f"{workdir}/empty", str(dest))
    assert result.returncode == 0, result.stderr.decode()
    assert dest.read_bytes() == b""


def test_read_of_a_missing_sector_file_fails_naming_e_noexist(
    run, workdir: str, tmp_path: Path
) -> None:
    dest = tmp_path / "never-written"
    result = run("read.py", f"{workdir}/no-such-file", str(dest))
    assert result.returncode == 1
    message = result.stderr.decode()
    assert "E_NOEXIST" in message and f"{workdir}/no-such-file" in message
    assert "Traceback" not in message
    assert not dest.exists()


def test_read_into_an_unwritable_place_fails_cleanly(
    run, client: Client, workdir: str, tmp_path: Path
) -> None:
    upload(client, tmp_path, f"{workdir}/f", b"data")
    result = run("read.py", f"{workdir}/f", str(tmp_path / "no-such-dir" / "out"))
    assert result.returncode == 1
    assert b"cannot write" in result.stderr
    assert b"Traceback" not in result.stderr


def test_read_with_a_wrong_password_fails_naming_e_password(
    cluster: LocalCluster, client: Client, workdir: str, tmp_path: Path
) -> None:
    upload(client, tmp_path, f"{workdir}/f", b"data")
    assert cluster.master_address is not None
    result = run_script(
        "read.py",
        "--master",
        "{}:{}".format(*cluster.master_address),
        "--cert",
        str(cluster.layout.cert),
        "--user",
        USER,
        "--password",
        "wrong",
        f"{workdir}/f",
        str(tmp_path / "out"),
        env=clean_env(tmp_path),
    )
    assert result.returncode == 1
    assert b"E_PASSWORD" in result.stderr


def test_read_finds_the_local_cluster_through_sector_home_alone(
    cluster: LocalCluster, client: Client, workdir: str, tmp_path: Path
) -> None:
    """No options: client.conf and the run file of `sector up` under $SECTOR_HOME suffice."""
    upload(client, tmp_path, f"{workdir}/f", b"found through SECTOR_HOME\n")
    dest = tmp_path / "out"
    result = run_script("read.py", f"{workdir}/f", str(dest), env=clean_env(cluster.layout.home))
    assert result.returncode == 0, result.stderr.decode()
    assert dest.read_bytes() == b"found through SECTOR_HOME\n"


# --- sectorgrep.py ------------------------------------------------------------------


def test_sectorgrep_prints_matching_lines(
    run, client: Client, workdir: str, tmp_path: Path
) -> None:
    data = b"alpha\nbeta needle\ngamma\nneedle at start\nlast line needle without newline"
    upload(client, tmp_path, f"{workdir}/text", data)
    result = run("sectorgrep.py", "needle", f"{workdir}/text")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"beta needle\nneedle at start\nlast line needle without newline\n"


def test_sectorgrep_matches_lines_that_straddle_read_chunks(
    run, client: Client, workdir: str, tmp_path: Path
) -> None:
    chunk = 64
    rng = random.Random(7)
    lines = []
    for n in range(400):
        body = bytes(rng.choice(b"abcdefgh ") for _ in range(rng.randrange(0, 3 * chunk)))
        if n % 3 == 0:
            cut = rng.randrange(len(body) + 1)
            body = body[:cut] + b"NEEDLE" + body[cut:]
        lines.append(body)
    data = b"\n".join(lines) + b"\n"

    # The test is only meaningful if matches really cross chunk boundaries,
    # including the pattern itself being cut in two.
    placed, offset = [], 0  # (offset of the line in the file, line)
    for line in lines:
        placed.append((offset, line))
        offset += len(line) + 1
    matching = [(start, line) for start, line in placed if b"NEEDLE" in line]
    assert any(start // chunk != (start + len(line)) // chunk for start, line in matching)
    assert any(
        (start + line.index(b"NEEDLE")) // chunk != (start + line.index(b"NEEDLE") + 5) // chunk
        for start, line in matching
    )

    upload(client, tmp_path, f"{workdir}/long", data)
    result = run("sectorgrep.py", "--chunk-size", str(chunk), "NEEDLE", f"{workdir}/long")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.splitlines(keepends=True) == reference_grep(data, b"NEEDLE")


def test_sectorgrep_is_binary_safe(run, client: Client, workdir: str, tmp_path: Path) -> None:
    data = b"".join(
        [
            b"\x00\x00 header \x00\n",
            b"first\x00needle\x00line\n",
            b"\xff\xfe not utf-8 needle \x80\n",
            b"\x00" * 100 + b"needle after NULs\n",
            b"no match \x00 here\n",
        ]
    )
    upload(client, tmp_path, f"{workdir}/nul.bin", data)
    result = run("sectorgrep.py", "--chunk-size", "7", "needle", f"{workdir}/nul.bin")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"".join(reference_grep(data, b"needle"))
    assert result.stdout.count(b"\n") == 3


def test_sectorgrep_options_ignore_case_line_numbers_and_count(
    run, client: Client, workdir: str, tmp_path: Path
) -> None:
    data = b"Sector\nsector\nSECTOR fs\nslave\n"
    upload(client, tmp_path, f"{workdir}/case", data)
    remote = f"{workdir}/case"
    assert run("sectorgrep.py", "sector", remote).stdout == b"sector\n"
    assert run("sectorgrep.py", "-i", "sector", remote).stdout == b"Sector\nsector\nSECTOR fs\n"
    numbered = run("sectorgrep.py", "-n", "-i", "^sector$", remote).stdout
    assert numbered == b"1:Sector\n2:sector\n"
    assert run("sectorgrep.py", "-c", "-i", "sector", remote).stdout == b"3\n"


def test_sectorgrep_exits_1_when_nothing_matches(
    run, client: Client, workdir: str, tmp_path: Path
) -> None:
    upload(client, tmp_path, f"{workdir}/f", b"nothing to see\n")
    result = run("sectorgrep.py", "needle", f"{workdir}/f")
    assert (result.returncode, result.stdout, result.stderr) == (1, b"", b"")


def test_sectorgrep_of_a_missing_sector_file_fails_naming_e_noexist(run, workdir: str) -> None:
    result = run("sectorgrep.py", "x", f"{workdir}/no-such-file")
    assert result.returncode == 2
    assert b"E_NOEXIST" in result.stderr
    assert b"Traceback" not in result.stderr


def test_sectorgrep_refuses_a_bad_pattern_before_connecting(run, workdir: str) -> None:
    result = run("sectorgrep.py", "(unclosed", f"{workdir}/whatever")
    assert result.returncode == 2
    assert b"bad PATTERN" in result.stderr


# --- demo.sh ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_demo(home: Path, port: int | None = None) -> subprocess.CompletedProcess[str]:
    extra = {"PYTHON": sys.executable}
    if port is not None:
        extra["SECTOR_PORT"] = str(port)
    return subprocess.run(
        ["bash", str(EXAMPLES / "demo.sh")],
        env=clean_env(home, **extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )


def test_demo_starts_a_cluster_runs_both_examples_and_stops_it(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    result = run_demo(home, port)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"127.0.0.1:{port}" in output
    assert "identical to the original" in output
    assert "matching lines, the same as searching the local file" in output
    assert "Stopping the cluster this demo started" in output
    assert not (home / "cluster.json").exists(), "the demo's cluster was left running"


def test_demo_reuses_a_running_cluster_and_leaves_it_running(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    running = make_cluster()
    result = run_demo(running.layout.home)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Reusing the Sector cluster already running" in output
    assert "Stopping" not in output
    with connect(running) as client:
        assert client.stat("/demo/sample.txt").size > 0
