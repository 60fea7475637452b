"""upload, download, pipe: whole trees, parallel streams, resuming, streaming stdin."""

from __future__ import annotations

import filecmp
import os
import random
import resource
import subprocess
import sys
import threading
from pathlib import Path

from sector.client import Client
from sector.protocol import checksum
from tests.support import random_file, sha256_of, wait_until

from .conftest import COMMAND, Sector


def make_tree(root: Path, files: int, seed: int = 7) -> None:
    """``files`` files of 0 B to 40 KiB (and a few of 1 MiB) in nested directories."""
    rng = random.Random(seed)
    dirs = [root]
    for number in range(files):
        if number % 10 == 0:
            parent = rng.choice(dirs)
            dirs.append(parent / f"d{number:03}")
            dirs[-1].mkdir(parents=True)
        size = 1024 * 1024 if number % 50 == 1 else rng.choice([0, 1, 100, 4096, 40960])
        (rng.choice(dirs) / f"f{number:03}.dat").write_bytes(rng.randbytes(size))
    (root / "empty-dir" / "deeper").mkdir(parents=True)


def assert_same_tree(left: Path, right: Path) -> None:
    """Same names everywhere, and every file equal byte for byte."""
    compared = filecmp.dircmp(left, right)
    assert compared.left_only == compared.right_only == [], (left, right)
    assert compared.common_funny == compared.funny_files == []
    _, mismatch, errors = filecmp.cmpfiles(left, right, compared.common_files, shallow=False)
    assert mismatch == errors == []
    for name in compared.common_dirs:
        assert_same_tree(left / name, right / name)


def test_a_tree_of_200_files_goes_up_and_comes_back_identical_with_4_streams(
    sector: Sector, remote: str, client: Client, tmp_path: Path
) -> None:
    source = tmp_path / "tree"
    make_tree(source, 200)
    assert sector.ok("upload", "-j", "4", "tree", f"{remote}/") == ""
    uploaded = [f for _, _, files in client.walk(f"{remote}/tree") for f in files]
    assert len(uploaded) == 200
    assert client.stat(f"{remote}/tree/empty-dir/deeper").isdir
    assert sector.ok("download", "-j", "4", f"{remote}/tree", "copy") == ""
    assert_same_tree(source, tmp_path / "copy")
    assert not list((tmp_path / "copy").rglob("*.sector-part"))


def test_upload_and_download_single_files_and_verbose_lines(
    sector: Sector, remote: str, tmp_path: Path
) -> None:
    (tmp_path / "one.txt").write_bytes(b"one\n")
    assert sector.ok("upload", "-v", "one.txt", f"{remote}/renamed.txt") == (
        f"one.txt -> {remote}/renamed.txt: 4 bytes\n"
    )
    assert sector.ok("download", f"{remote}/renamed.txt", "back.txt") == ""
    assert (tmp_path / "back.txt").read_bytes() == b"one\n"
    sector.ok("download", f"{remote}/renamed.txt", ".")
    assert (tmp_path / "renamed.txt").read_bytes() == b"one\n"


def test_local_and_sector_wildcards(sector: Sector, remote: str, tmp_path: Path) -> None:
    for name in ("a1.log", "a2.log", "b.txt"):
        (tmp_path / name).write_text(name)
    sector.ok("upload", "*.log", f"{remote}/logs")
    assert sector.ok("ls", f"{remote}/logs") == "a1.log\na2.log\n"
    sector.ok("download", f"{remote}/logs/a?.log", "got")
    assert sorted(os.listdir(tmp_path / "got")) == ["a1.log", "a2.log"]
    assert sector.fails("upload", "*.none", remote) == "sector: *.none: no match (E_LOCALFILE)"
    assert sector.fails("download", f"{remote}/*.none", "x") == (
        f"sector: {remote}/*.none: no match (E_NOEXIST)"
    )


def test_transfer_failures_name_the_path(sector: Sector, remote: str, tmp_path: Path) -> None:
    assert sector.fails("upload", "missing.bin", remote) == (
        "sector: missing.bin: no such file or directory (E_LOCALFILE)"
    )
    assert sector.fails("download", f"{remote}/missing.bin", "x") == (
        f"sector: {remote}/missing.bin: no such file or directory (E_NOEXIST)"
    )
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    sector.ok("upload", "a", f"{remote}/file")
    assert sector.fails("upload", "a", "b", f"{remote}/file") == (
        f"sector: {remote}/file: not a directory (E_INVALID)"
    )


def test_download_resume_continues_after_the_download_was_killed(
    sector: Sector, remote: str, client: Client, tmp_path: Path
) -> None:
    size = 24 * 1024 * 1024
    digest = random_file(tmp_path / "big.src", size)
    client.upload(tmp_path / "big.src", f"{remote}/big")
    part = tmp_path / ".big.sector-part"
    # Throttled to 4 MiB/s the download needs 6 s: the first 4 MiB chunk lands at
    # once, and the kill comes well before the end.
    running = sector.popen("download", "--limit-rate", "4M", f"{remote}/big", "big")
    try:
        wait_until(
            lambda: part.exists() and part.stat().st_size >= 4 * 1024 * 1024,
            what="the first chunk of the download",
        )
    finally:
        running.kill()
        running.wait(timeout=30)
    kept = part.stat().st_size
    assert 0 < kept < size and not (tmp_path / "big").exists()
    out = sector.ok("download", "--resume", "-v", f"{remote}/big", "big")
    assert out == f"{remote}/big -> big: {size} bytes ({kept} bytes were already here)\n"
    assert sha256_of(tmp_path / "big") == digest
    assert not part.exists()
    again = sector.ok("download", "--resume", "-v", f"{remote}/big", "big")
    assert again.endswith(f"({size} bytes were already here)\n")


def test_download_resume_refetches_a_partial_file_that_does_not_match(
    sector: Sector, remote: str, client: Client, tmp_path: Path
) -> None:
    digest = random_file(tmp_path / "src", 3 * 1024 * 1024)
    client.upload(tmp_path / "src", f"{remote}/f")
    (tmp_path / "f").write_bytes(b"not the same bytes")
    sector.ok("download", "--resume", f"{remote}/f", "f")
    assert sha256_of(tmp_path / "f") == digest


def test_pipe_streams_more_than_its_memory_limit(
    sector: Sector, remote: str, client: Client
) -> None:
    limit = 160 * 1024 * 1024
    total = 256 * 1024 * 1024

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    # The limit bites: a process that buffered the stream whole would fail.
    buffered = subprocess.run(
        [sys.executable, "-c", f"bytearray({total})"], preexec_fn=limited, capture_output=True
    )
    assert buffered.returncode != 0 and b"MemoryError" in buffered.stderr

    process = subprocess.Popen(
        [*COMMAND, "pipe", f"{remote}/stream.bin"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=sector.env,
        preexec_fn=limited,
    )
    assert process.stdin is not None and process.stderr is not None
    hasher = checksum.new_hasher()
    block = os.urandom(1024 * 1024)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()))
    reader.start()
    for number in range(total // len(block)):
        chunk = number.to_bytes(8, "little") + block[8:]
        hasher.update(chunk)
        process.stdin.write(chunk)
    process.stdin.close()
    assert process.wait(timeout=120) == 0
    reader.join()
    assert errors == [b""]
    entry = client.stat(f"{remote}/stream.bin")
    assert entry.size == total
    assert entry.checksum == hasher.hexdigest()
