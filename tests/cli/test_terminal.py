"""The CLI in a real terminal (a pty): a progress bar and a password prompt appear there.

And neither appears when the output goes to a pipe: scripts and logs see only
what they asked for.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import time
from pathlib import Path

from sector.client import Client
from sector.cluster import LocalCluster
from tests.support import random_file

from .conftest import COMMAND, Sector, clean_env

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A command running on a pty of 120x40, its output read as it comes."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm-256color"},
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)
        self.output = b""

    def read_until(self, pattern: bytes, timeout: float = 60) -> bytes:
        """Everything up to the end of output, or until ``pattern`` shows up."""
        deadline = time.monotonic() + timeout
        while pattern not in ANSI.sub(b"", self.output):
            assert time.monotonic() < deadline, f"no {pattern!r} in {self.output!r}"
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                chunk = b""
            if not chunk:
                break
            self.output += chunk
        return ANSI.sub(b"", self.output)

    def finish(self) -> tuple[int, bytes]:
        text = self.read_until(b"\x00never\x00")
        code = self.process.wait(timeout=60)
        os.close(self.master)
        return code, text


def test_progress_bar_is_drawn_on_a_terminal_and_absent_in_a_pipe(
    cluster: LocalCluster, remote: str, tmp_path: Path
) -> None:
    random_file(tmp_path / "big.bin", 32 * 1024 * 1024)
    env = clean_env(cluster.layout.home)
    upload = [*COMMAND, "upload", "big.bin", f"{remote}/big.bin"]
    code, text = Terminal(upload, env, tmp_path).finish()
    assert code == 0, text
    assert b"upload big.bin" in text
    assert b"\xe2\x94\x81" in text  # the bar's line character
    assert re.search(rb"33\.6/33\.6 MB", text), text  # bytes done / total
    assert re.search(rb"\d+(\.\d+)? [kMG]?B/s", text), text  # rate

    download = [*COMMAND, "download", f"{remote}/big.bin", "copy.bin"]
    code, text = Terminal(download, env, tmp_path).finish()
    assert code == 0 and b"download big.bin" in text and b"33.6/33.6 MB" in text

    piped = Sector(env, cwd=tmp_path)
    result = piped("upload", "big.bin", f"{remote}/again.bin")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    result = piped("download", f"{remote}/big.bin", "copy2.bin")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_missing_password_is_asked_for_on_a_terminal_only(
    cluster: LocalCluster, client: Client, remote: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / "conf").mkdir(parents=True)
    assert cluster.master_address is not None
    (home / "conf" / "client.conf").write_text(
        "MASTER_ADDRESS\n\t{}:{}\nUSERNAME\n\ttest\nCERTIFICATE\n\t{}\n".format(
            *cluster.master_address, cluster.layout.cert
        )
    )
    client.mkdir(f"{remote}/visible")
    env = clean_env(home)
    terminal = Terminal([*COMMAND, "ls", remote], env, tmp_path)
    terminal.read_until(b"Password for test: ")
    os.write(terminal.master, b"xxx\n")
    code, text = terminal.finish()
    assert code == 0, text
    assert b"xxx" not in text  # not echoed
    assert text.rstrip().endswith(b"visible/")

    assert Sector(env).fails("ls", remote) == (
        "sector: no password for user test: set SECTOR_PASSWORD or PASSWORD "
        "in client.conf (E_PASSWORD)"
    )
    assert Sector(env).ok("ls", remote, env={"SECTOR_PASSWORD": "xxx"}) == "visible/\n"
