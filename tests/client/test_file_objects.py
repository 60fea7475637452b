"""``Client.open`` gives Python file objects: what ``io``, pandas and Arrow expect of one.

Against the shared real cluster. Each test is a promise the README makes:
Python's modes and seek bases, line iteration, ``io`` wrappers, libraries
that take an open file, and Sector's own guarantee that a written file
appears whole at close (and not at all when the writer gives up).
"""

from __future__ import annotations

import gc
import io
import os
import threading

import pytest

from sector.client import Client, SectorFile, SectorTextFile
from sector.errors import E_INVALID, SectorError
from sector.protocol import checksum
from sector.protocol.checksum import BLOCK

MiB = 1024 * 1024
TEXT = "naïve line one\nline two\r\nthird, no newline"


def put(client: Client, path: str, data: bytes) -> None:
    with client.open(path, "wb") as remote:
        remote.write(data)


def get(client: Client, path: str) -> bytes:
    with client.open(path) as remote:
        return remote.read()


def test_a_binary_file_is_an_io_object_with_pythons_attributes(
    client: Client, workdir: str
) -> None:
    put(client, f"{workdir}/f", b"0123456789" * 10)
    with client.open(f"{workdir}/f", "rb") as remote:
        assert isinstance(remote, io.BufferedIOBase) and isinstance(remote, SectorFile)
        assert (remote.readable(), remote.writable(), remote.seekable()) == (True, False, True)
        assert (remote.name, remote.mode) == (f"{workdir}/f", "rb")
        assert remote.seek(-10, os.SEEK_END) == 90
        assert remote.read() == b"0123456789"
        assert remote.seek(-5, os.SEEK_CUR) == 95 and remote.tell() == 95
        assert remote.seek(3) == 3 and remote.read(4) == b"3456"
        target = bytearray(6)
        assert remote.readinto(target) == 6 and target == b"789012"
        with pytest.raises(io.UnsupportedOperation):
            remote.write(b"x")
        with pytest.raises(ValueError, match="whence"):
            remote.seek(0, 7)
        with pytest.raises(ValueError, match="before the start"):
            remote.seek(-1)
    assert remote.closed
    with pytest.raises(ValueError, match="closed"):
        remote.read()


def test_lines_iterate_and_readline_stops_at_the_newline_or_the_limit(
    client: Client, workdir: str
) -> None:
    lines = [b"%d,%s\n" % (n, b"x" * (n % 300)) for n in range(20_000)]  # ~3 MB: several blocks
    put(client, f"{workdir}/lines.csv", b"".join(lines) + b"last, no newline")
    with client.open(f"{workdir}/lines.csv") as remote:
        assert list(remote) == [*lines, b"last, no newline"]
    with client.open(f"{workdir}/lines.csv") as remote:
        assert remote.readline(1) == b"0"  # the limit, before the newline
        assert remote.readline() == b",\n"
        assert remote.readline() == b"1,x\n"
        remote.seek(-5, os.SEEK_END)
        assert remote.readline() == b"wline"
        assert remote.readline() == b""
        remote.seek(0)
        assert remote.readlines(2) == [b"0,\n"]


def test_io_wrappers_and_text_modes(client: Client, workdir: str) -> None:
    with client.open(f"{workdir}/t.txt", "w", encoding="utf-8", newline="") as text:
        assert isinstance(text, SectorTextFile) and text.mode == "w"
        text.write(TEXT)
    with client.open(f"{workdir}/t.txt", "r", encoding="utf-8") as text:
        assert text.read() == "naïve line one\nline two\nthird, no newline"  # universal newlines
    with client.open(f"{workdir}/t.txt", "a") as text:
        text.write("\nappended")
    with client.open(f"{workdir}/t.txt", "rb") as raw:
        lines = list(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        assert lines[1:] == ["line two\r\n", "third, no newline\n", "appended"]
    with client.open(f"{workdir}/t.txt", "rb") as raw:
        buffered = io.BufferedReader(raw, buffer_size=4)
        assert buffered.readline() == "naïve line one\n".encode()
        assert buffered.peek(1)[:4] == b"line"
    with pytest.raises(ValueError, match="binary mode"):
        client.open(f"{workdir}/t.txt", "rb", encoding="utf-8")


def test_pythons_write_modes(client: Client, workdir: str) -> None:
    path = f"{workdir}/m"
    put(client, path, b"0123456789")
    with client.open(path, "r+b") as remote:  # read and write in place, keeping the rest
        assert remote.mode == "rb+" and remote.readable() and remote.writable()
        assert remote.read(3) == b"012"
        remote.write(b"abc")
        remote.seek(0)
        assert remote.read() == b"012abc6789"
    with client.open(path, "ab") as remote:  # every write at the end, wherever the position
        remote.seek(0)
        remote.write(b"+end")
    assert get(client, path) == b"012abc6789+end"
    with pytest.raises(FileNotFoundError):
        client.open(f"{workdir}/missing", "r+b")  # as open(): r+ does not create
    assert not client.exists(f"{workdir}/missing")
    with client.open(f"{workdir}/new", "xb") as remote:
        remote.write(b"first")
    with pytest.raises(FileExistsError):
        client.open(f"{workdir}/new", "xb")
    with pytest.raises(FileExistsError):
        client.open(workdir, "xb")  # a directory exists too
    assert get(client, f"{workdir}/new") == b"first"


def test_exclusive_create_lets_exactly_one_of_many_racing_clients_win(
    cluster, workdir: str
) -> None:
    racers = [cluster.connect() for _ in range(6)]
    outcomes: list[str] = []
    start = threading.Barrier(len(racers))

    def race(number: int, session: Client) -> None:
        start.wait()
        try:
            with session.open(f"{workdir}/lock", "xb") as remote:
                remote.write(b"won by %d" % number)
            outcomes.append("won")
        except FileExistsError:
            outcomes.append("exists")

    threads = [threading.Thread(target=race, args=pair) for pair in enumerate(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for session in racers:
        session.close()
    assert sorted(outcomes) == ["exists"] * 5 + ["won"]


def test_a_written_file_appears_at_close_and_not_at_all_when_given_up(
    client: Client, workdir: str
) -> None:
    put(client, f"{workdir}/kept", b"old")
    with pytest.raises(RuntimeError), client.open(f"{workdir}/kept", "w") as text:
        text.write("new")
        raise RuntimeError("the writer gives up")
    dropped = client.open(f"{workdir}/kept", "wb")
    dropped.write(b"never committed")
    del dropped
    gc.collect()
    assert get(client, f"{workdir}/kept") == b"old"
    with client.open(f"{workdir}/kept", "wb") as remote:
        remote.write(b"new")
        assert get(client, f"{workdir}/kept") == b"old"
    assert get(client, f"{workdir}/kept") == b"new"


def test_pandas_and_arrow_read_and_write_through_an_open_file(client: Client, workdir: str) -> None:
    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    frame = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]})
    with client.open(f"{workdir}/t.csv", "wb") as remote:
        frame.to_csv(remote, index=False)
    with client.open(f"{workdir}/t.csv") as remote:
        assert pd.read_csv(remote).equals(frame)
    with client.open(f"{workdir}/t.parquet", "wb") as remote:
        frame.to_parquet(remote)
    with client.open(f"{workdir}/t.parquet") as remote:
        assert pq.read_table(remote).to_pandas().equals(frame)


@pytest.mark.parametrize(
    ("start", "length"),
    [
        (0, None),  # the whole file: whole blocks to the end, received in place
        (BLOCK, 2 * MiB),  # whole blocks inside the file: in place too
        (5, None),  # a partial first block: read the usual way
        (1000, 2 * MiB),  # partial blocks at both ends
    ],
)
def test_a_large_read_arrives_whole_and_equal(
    client: Client, workdir: str, start: int, length: int | None
) -> None:
    data = os.urandom(3 * MiB + 17)  # past the read-ahead: one request per read
    put(client, f"{workdir}/big", data)
    with client.open(f"{workdir}/big") as remote:
        remote.seek(start)
        wanted = data[start:] if length is None else data[start : start + length]
        got = remote.read(length)
        assert type(got) is bytes and got == wanted
        assert remote.tell() == start + len(wanted)


def test_the_module_api_keeps_sector_seek_bases_and_status_codes(pysector, workdir: str) -> None:
    handle = pysector.open(f"{workdir}/p", pysector.WRITE | pysector.TRUNC)
    assert pysector.write(handle, b"0123456789", 4) == 4
    assert pysector.seek(handle, 0, 9) == E_INVALID  # not an SF_POS base
    assert pysector.read(handle, 1) == E_INVALID  # opened to write only
    assert pysector.close(handle) == 0
    handle = pysector.open(f"{workdir}/p")
    assert pysector.seek(handle, -1, pysector.SF_POS.END) == 3
    assert pysector.read(handle, 10) == b"3"
    assert pysector.open(f"{workdir}/p", "r") == E_INVALID  # text: the module moves bytes
    assert pysector.close(handle) == 0


def test_errors_are_sector_errors_carrying_codes(client: Client, workdir: str) -> None:
    put(client, f"{workdir}/w", b"x")
    with client.open(f"{workdir}/w", "wb") as remote, pytest.raises(SectorError) as caught:
        remote.read()
    assert caught.value.code == E_INVALID


def test_truncate_cuts_or_extends_the_version_being_written_in_place(
    client: Client, workdir: str
) -> None:
    path = f"{workdir}/cut"
    put(client, path, b"0123456789")
    with client.open(path, "r+b") as remote:
        remote.seek(2)
        assert remote.truncate() == 2 and remote.tell() == 2  # to the position, which stays
        remote.write(b"ab")
        assert remote.truncate(6) == 6  # longer: zeros
        remote.seek(0)
        assert remote.read() == b"01ab\x00\x00"
        assert get(client, path) == b"0123456789"  # nothing visible before close
    assert get(client, path) == b"01ab\x00\x00"
    assert client.stat(path).checksum == checksum.of_bytes(b"01ab\x00\x00")
    with client.open(path) as remote, pytest.raises(io.UnsupportedOperation):
        remote.truncate(0)


def test_a_closed_file_refuses_io_and_closing_twice_is_harmless(
    client: Client, workdir: str
) -> None:
    remote = client.open(f"{workdir}/twice", "wb")
    remote.write(b"x")
    remote.close()
    remote.close()
    for call in (remote.flush, remote.tell, lambda: remote.write(b"y")):
        with pytest.raises(ValueError, match="closed"):
            call()
    assert get(client, f"{workdir}/twice") == b"x"


def test_a_bad_encoding_or_newline_is_refused_before_anything_is_opened(
    client: Client, workdir: str
) -> None:
    with pytest.raises(LookupError):
        client.open(f"{workdir}/t", "w", encoding="no-such-codec")
    with pytest.raises(ValueError, match="newline"):
        client.open(f"{workdir}/t", "w", newline="\t")
    with client.open(f"{workdir}/t", "w") as text:  # no lease was left behind
        text.write("ok")
    assert get(client, f"{workdir}/t") == b"ok"
