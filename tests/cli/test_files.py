"""Namespace commands: what they print on success, and how they fail."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sector.cli.main import cli
from sector.client import Client
from sector.protocol.messages import WRITE

from .conftest import Sector


@pytest.fixture
def tree(client: Client, remote: str, tmp_path: Path) -> str:
    """``remote`` holding a.txt (6 B), b.bin (1536 B), sub/c.txt (3 B) and empty/."""
    for name, data in {
        "a.txt": b"hello\n",
        "b.bin": bytes(range(256)) * 6,
        "sub/c.txt": b"cc\n",
    }.items():
        local = tmp_path / name.replace("/", "_")
        local.write_bytes(data)
        client.upload(local, f"{remote}/{name}")
    client.mkdir(f"{remote}/empty")
    return remote


def test_ls_lists_names_sorted_with_directories_marked(sector: Sector, tree: str) -> None:
    assert sector.ok("ls", tree).splitlines() == ["a.txt", "b.bin", "empty/", "sub/"]


def test_ls_long_and_human_sizes(sector: Sector, tree: str) -> None:
    lines = sector.ok("ls", "-lh", tree).splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    assert re.fullmatch(rf"-     6  {stamp}  a\.txt", lines[0]), lines
    assert re.fullmatch(rf"-  1\.5K  {stamp}  b\.bin", lines[1]), lines
    assert re.fullmatch(rf"d     0  {stamp}  sub/", lines[3]), lines
    assert "1536" in sector.ok("ls", "-l", tree).splitlines()[1]


def test_ls_recursive_prints_each_directory_under_a_header(sector: Sector, tree: str) -> None:
    assert sector.ok("ls", "-R", tree) == (
        f"{tree}:\na.txt\nb.bin\nempty/\nsub/\n\n{tree}/empty:\n\n{tree}/sub:\nc.txt\n"
    )


def test_ls_expands_wildcards_against_sector(sector: Sector, tree: str) -> None:
    assert sector.ok("ls", f"{tree}/?.*").splitlines() == [f"{tree}/a.txt", f"{tree}/b.bin"]
    assert sector.ok("ls", f"{tree}/*/c.txt") == f"{tree}/sub/c.txt\n"
    assert sector.fails("ls", f"{tree}/*.none") == (f"sector: {tree}/*.none: no match (E_NOEXIST)")


def test_ls_of_several_paths_reports_the_missing_one_and_lists_the_rest(
    sector: Sector, tree: str
) -> None:
    result = sector("ls", f"{tree}/sub", f"{tree}/nope")
    assert result.returncode == 1
    assert result.stdout == f"{tree}/sub:\nc.txt\n"
    assert result.stderr == f"sector: {tree}/nope: no such file or directory (E_NOEXIST)\n"


def test_stat_shows_metadata_and_holders(sector: Sector, tree: str, client: Client) -> None:
    fields = dict(
        line.strip().split(": ", 1) for line in sector.ok("stat", f"{tree}/b.bin").splitlines()
    )
    entry = client.stat(f"{tree}/b.bin")
    assert fields["path"] == f"{tree}/b.bin"
    assert fields["type"] == "file"
    assert fields["size"] == "1536 (1.5K)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", fields["modified"])
    assert fields["version"] == "1"
    assert fields["checksum"] == f"xxh3-64k:{entry.checksum}"
    assert fields["slaves"] == ", ".join(entry.slaves)
    assert "type: directory" in sector.ok("stat", f"{tree}/sub")


def test_mkdir_needs_p_for_missing_parents_and_existing_directories(
    sector: Sector, remote: str, client: Client
) -> None:
    assert sector.fails("mkdir", f"{remote}/x/y") == (
        f"sector: {remote}/x: no such file or directory (E_NOEXIST)"
    )
    sector.ok("mkdir", "-p", f"{remote}/x/y")
    assert client.stat(f"{remote}/x/y").isdir
    sector.ok("mkdir", "-p", f"{remote}/x/y")
    assert sector.fails("mkdir", f"{remote}/x") == (
        f"sector: {remote}/x: file or directory already exists (E_EXIST)"
    )


def test_rm_refuses_a_full_directory_without_r(sector: Sector, tree: str, client: Client) -> None:
    assert sector.fails("rm", f"{tree}/sub") == (
        f"sector: {tree}/sub: directory not empty (E_NOEMPTY)"
    )
    sector.ok("rm", f"{tree}/a.txt", f"{tree}/empty")
    sector.ok("rm", "-r", f"{tree}/sub")
    assert [e.name for e in client.ls(tree)] == ["b.bin"]
    assert sector.fails("rm", f"{tree}/a.txt") == (
        f"sector: {tree}/a.txt: no such file or directory (E_NOEXIST)"
    )
    sector.ok("rm", "-f", f"{tree}/a.txt", f"{tree}/*.none")
    sector.ok("rm", f"{tree}/b.*")
    assert client.ls(tree) == []


def test_mv_renames_and_moves_into_directories(sector: Sector, tree: str, client: Client) -> None:
    sector.ok("mv", f"{tree}/a.txt", f"{tree}/renamed.txt")
    sector.ok("mv", f"{tree}/renamed.txt", f"{tree}/b.bin", f"{tree}/empty")
    assert [e.name for e in client.ls(f"{tree}/empty")] == ["b.bin", "renamed.txt"]
    assert sector.fails("mv", f"{tree}/nope", f"{tree}/x") == (
        f"sector: {tree}/nope: no such file or directory (E_NOEXIST)"
    )


def test_cp_copies_files_and_with_r_directories(sector: Sector, tree: str, client: Client) -> None:
    sector.ok("cp", f"{tree}/a.txt", f"{tree}/a2.txt")
    assert client.stat(f"{tree}/a2.txt").checksum == client.stat(f"{tree}/a.txt").checksum
    assert sector.fails("cp", f"{tree}/sub", f"{tree}/sub2") == (
        f"sector: {tree}/sub: is a directory (-r copies it) (E_INVALID)"
    )
    sector.ok("cp", "-r", f"{tree}/sub", f"{tree}/empty", f"{tree}/copy/")
    assert [e.name for e in client.ls(f"{tree}/copy")] == ["empty", "sub"]
    assert sector.ok("cat", f"{tree}/copy/sub/c.txt") == "cc\n"
    assert sector.fails("cp", "-r", tree, f"{tree}/copy/inside") == (
        f"sector: {tree}/copy/inside: cannot copy a directory into itself (E_INVALID)"
    )


def test_cat_writes_files_in_order_and_stops_quietly_on_a_closed_pipe(
    sector: Sector, tree: str
) -> None:
    assert sector.ok("cat", f"{tree}/a.txt", f"{tree}/sub/c.txt") == "hello\ncc\n"
    assert sector.fails("cat", f"{tree}/sub") == (f"sector: {tree}/sub: is a directory (E_INVALID)")
    head = sector.popen("cat", f"{tree}/b.bin", stdout=-1, stderr=-1)
    assert head.stdout is not None and head.stderr is not None
    assert head.stdout.read(10) == bytes(range(10))
    head.stdout.close()
    head.wait(timeout=30)
    assert head.stderr.read() == b""


def test_du_sums_each_directory_children_first(sector: Sector, tree: str) -> None:
    assert sector.ok("du", tree).splitlines() == [
        f"0\t{tree}/empty",
        f"3\t{tree}/sub",
        f"1545\t{tree}",
    ]
    assert sector.ok("du", "-sh", tree, f"{tree}/a.txt") == f"1.5K\t{tree}\n6\t{tree}/a.txt\n"


def test_debug_shows_the_traceback_that_is_otherwise_hidden(sector: Sector, remote: str) -> None:
    result = sector("--debug", "stat", f"{remote}/nope")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.endswith(f"sector: {remote}/nope: no such file or directory (E_NOEXIST)\n")


def test_every_command_has_help_with_an_example(sector: Sector) -> None:
    listing = sector.ok("--help")
    assert "sector upload -j 4" in listing
    assert "_SECTOR_COMPLETE=bash_source sector" in listing
    # Each subcommand's help, in process: the text is static, and 18 more
    # interpreter start-ups would add seconds for nothing.
    runner = CliRunner()
    for name in cli.commands:
        assert f"  {name} " in listing
    for words in _leaf_commands(cli):
        command = " ".join(words)
        text = runner.invoke(cli, [*words, "--help"], prog_name="sector").output
        assert text.startswith(f"Usage: sector {command}"), text
        assert "Example:" in text and f"sector {command}" in text.split("Example:")[1], command
        assert "``" not in text, command  # no raw reStructuredText
    # The servers' entry points are the same commands, with the same help.
    assert sector.ok("master", "--help").startswith("Usage: sector master [OPTIONS]")


def _leaf_commands(group: click.Group, words: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*words, name))
        else:
            yield (*words, name)


def test_the_other_commands_fail_with_one_line_too(
    sector: Sector, tree: str, tmp_path: Path
) -> None:
    assert sector.fails("du", f"{tree}/nope") == (
        f"sector: {tree}/nope: no such file or directory (E_NOEXIST)"
    )
    assert sector.fails("stat", f"{tree}/nope") == (
        f"sector: {tree}/nope: no such file or directory (E_NOEXIST)"
    )
    assert sector.fails("pipe", f"{tree}/a.txt/inside", input=b"data") == (
        f"sector: {tree}/a.txt: not a directory (E_INVALID)"
    )
    unreachable = {"SECTOR_MASTER": "127.0.0.1:1"}
    for command in ("df", "sysinfo", "fsck"):
        line = sector.fails(command, env=unreachable)
        assert line.startswith("sector: cannot reach the master at 127.0.0.1:1"), line
    nothing = sector("status", env={"SECTOR_HOME": str(tmp_path / "no-cluster")})
    assert (nothing.returncode, nothing.stdout) == (1, "No local cluster is running.\n")


def test_names_that_hold_control_characters_are_printed_escaped(
    sector: Sector, client: Client, remote: str
) -> None:
    """Issue 9: a name with a newline forged a line of ``ls``, and an escape sequence
    drove the terminal. Names may hold them; the CLI shows them as escapes."""
    evil = "evil\nforged line\x1b[31mred\u202etxt.exe"
    with client.open(f"{remote}/{evil}", WRITE) as handle:
        handle.write(b"x")
    shown = "evil\\nforged line\\x1b[31mred\\u202etxt.exe"
    assert sector.ok("ls", remote) == shown + "\n"
    assert sector.ok("ls", "-l", remote).rstrip("\n").endswith("  " + shown)
    assert f"path: {remote}/{shown}\n" in sector.ok("stat", f"{remote}/{evil}")
    assert sector.ok("du", remote).endswith(f"\t{remote}\n")
    missing = sector.fails("stat", f"{remote}/{evil}-gone")
    assert missing.startswith(f"sector: {remote}/{shown}-gone: ")
    assert "\x1b" not in sector.ok("ls", "-R", remote)
    assert json.loads(sector.ok("ls", "--json", remote))[0]["name"] == evil  # JSON's escapes
