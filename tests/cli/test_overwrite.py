"""One overwrite rule for mv, cp, upload and download: replace, as cp and mv do; -n keeps.

A file never replaces a directory; a directory replaces only an empty directory
(as ``mv`` and ``rename(2)`` do).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sector.client import Client

from .conftest import Sector


@pytest.fixture
def two_files(client: Client, remote: str, tmp_path: Path) -> str:
    for name, text in {"old": b"old bytes\n", "new": b"new bytes\n"}.items():
        (tmp_path / name).write_bytes(text)
        client.upload(tmp_path / name, f"{remote}/{name}")
    client.mkdir(f"{remote}/dir/new")
    return remote


def content(client: Client, path: str) -> bytes:
    with client.open(path) as handle:
        return handle.read()


def test_mv_replaces_a_file_and_keeps_it_with_no_clobber(
    sector: Sector, two_files: str, client: Client
) -> None:
    sector.ok("mv", "-n", f"{two_files}/new", f"{two_files}/old")
    assert content(client, f"{two_files}/old") == b"old bytes\n"
    assert client.exists(f"{two_files}/new")
    sector.ok("mv", f"{two_files}/new", f"{two_files}/old")
    assert content(client, f"{two_files}/old") == b"new bytes\n"
    assert not client.exists(f"{two_files}/new")


def test_cp_replaces_a_file_and_keeps_it_with_no_clobber(
    sector: Sector, two_files: str, client: Client
) -> None:
    sector.ok("cp", "--no-clobber", f"{two_files}/new", f"{two_files}/old")
    assert content(client, f"{two_files}/old") == b"old bytes\n"
    sector.ok("cp", f"{two_files}/new", f"{two_files}/old")
    assert content(client, f"{two_files}/old") == b"new bytes\n"
    assert [e.name for e in client.ls(two_files)] == ["dir", "new", "old"]  # no temporary left


def test_a_file_never_replaces_a_directory(sector: Sector, two_files: str, client: Client) -> None:
    line = sector.fails("mv", f"{two_files}/new", f"{two_files}/dir/")
    assert (
        line == f"sector: {two_files}/dir/new: is a directory: a file cannot replace it (E_INVALID)"
    )
    assert sector.fails("cp", f"{two_files}/new", f"{two_files}/dir/") == line
    assert client.stat(f"{two_files}/dir/new").isdir


def test_a_directory_replaces_only_an_empty_directory(
    sector: Sector, two_files: str, client: Client
) -> None:
    client.mkdir(f"{two_files}/moving/inside")
    client.mkdir(f"{two_files}/full/moving/kept")
    line = sector.fails("mv", f"{two_files}/moving", f"{two_files}/full/")
    assert line == f"sector: {two_files}/full/moving: directory not empty (E_NOEMPTY)"
    client.mkdir(f"{two_files}/empty/moving")
    sector.ok("mv", f"{two_files}/moving", f"{two_files}/empty/")
    assert [e.name for e in client.ls(f"{two_files}/empty/moving")] == ["inside"]


def test_upload_replaces_and_no_clobber_skips(
    sector: Sector, two_files: str, client: Client, tmp_path: Path
) -> None:
    (tmp_path / "old").write_bytes(b"local version\n")
    out = sector.ok("upload", "-n", "-v", str(tmp_path / "old"), f"{two_files}/old")
    assert out == f"{tmp_path / 'old'} -> {two_files}/old: skipped, {two_files}/old exists\n"
    assert content(client, f"{two_files}/old") == b"old bytes\n"
    sector.ok("upload", str(tmp_path / "old"), f"{two_files}/old")
    assert content(client, f"{two_files}/old") == b"local version\n"


def test_download_replaces_and_no_clobber_skips(
    sector: Sector, two_files: str, tmp_path: Path
) -> None:
    local = tmp_path / "here"
    local.write_bytes(b"mine\n")
    sector.ok("download", "-n", f"{two_files}/old", str(local))
    assert local.read_bytes() == b"mine\n"
    sector.ok("download", f"{two_files}/old", str(local))
    assert local.read_bytes() == b"old bytes\n"
