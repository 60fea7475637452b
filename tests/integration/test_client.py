"""The richer client API: SectorFile modes, exceptions, atomic commits, checksums, scale."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sector import errors
from sector.client import Client
from sector.cluster import Layout, LocalCluster, write_conf
from sector.protocol import checksum
from sector.protocol.messages import APPEND, READ, RW, TRUNC, WRITE
from tests.support import connect, random_file, sha256_of, wait_until


def write_file(client: Client, path: str, data: bytes, mode: int = WRITE | TRUNC) -> None:
    with client.open(path, mode) as handle:
        handle.write(data)


def read_file(client: Client, path: str) -> bytes:
    with client.open(path, READ) as handle:
        return handle.read()


class TestExceptions:
    def test_errors_subclass_the_builtins_a_python_programmer_expects(
        self, client: Client, workdir: str
    ) -> None:
        with pytest.raises(FileNotFoundError) as missing:
            client.stat(f"{workdir}/missing")
        assert missing.value.code == errors.E_NOEXIST
        client.mkdir(f"{workdir}/d")
        with pytest.raises(FileExistsError):
            client.mkdir(f"{workdir}/d")
        with pytest.raises(IsADirectoryError):
            client.open(f"{workdir}/d", READ)
        write_file(client, f"{workdir}/f", b"x")
        with pytest.raises(NotADirectoryError):
            client.mkdir(f"{workdir}/f/below")
        with pytest.raises(ValueError):
            client.stat("/..")
        with pytest.raises(errors.SectorNotEmptyError):
            client.rm(f"{workdir}/d/..", recursive=False)

    def test_rm_without_recursive_refuses_full_directory(self, client: Client, workdir: str):
        write_file(client, f"{workdir}/full/f", b"x")
        with pytest.raises(errors.SectorError) as refused:
            client.rm(f"{workdir}/full", recursive=False)
        assert refused.value.code == errors.E_NOEMPTY
        client.rm(f"{workdir}/full/f", recursive=False)
        client.rm(f"{workdir}/full", recursive=False)
        assert not client.exists(f"{workdir}/full")


class TestModes:
    def test_append_adds_to_the_end(self, client: Client, workdir: str) -> None:
        write_file(client, f"{workdir}/log", b"one\n")
        write_file(client, f"{workdir}/log", b"two\n", mode=APPEND)
        assert read_file(client, f"{workdir}/log") == b"one\ntwo\n"

    def test_write_without_trunc_overwrites_in_place(self, client: Client, workdir: str) -> None:
        write_file(client, f"{workdir}/f", b"0123456789")
        write_file(client, f"{workdir}/f", b"ab", mode=WRITE)
        assert read_file(client, f"{workdir}/f") == b"ab23456789"

    def test_trunc_starts_empty(self, client: Client, workdir: str) -> None:
        write_file(client, f"{workdir}/f", b"0123456789")
        write_file(client, f"{workdir}/f", b"ab", mode=WRITE | TRUNC)
        assert read_file(client, f"{workdir}/f") == b"ab"

    def test_rw_reads_its_own_writes_before_commit(self, client: Client, workdir: str) -> None:
        write_file(client, f"{workdir}/f", b"hello world")
        with client.open(f"{workdir}/f", RW) as handle:
            handle.seek(0, os.SEEK_END)
            handle.write(b"!!")
            handle.seek(6)
            assert handle.read(100) == b"world!!"
        assert read_file(client, f"{workdir}/f") == b"hello world!!"

    def test_random_writes_get_a_correct_checksum(self, client: Client, workdir: str) -> None:
        with client.open(f"{workdir}/f", WRITE) as handle:
            handle.seek(5)
            handle.write(b"world")
            handle.seek(0)
            handle.write(b"hello")
        data = read_file(client, f"{workdir}/f")
        assert data == b"helloworld"
        assert client.stat(f"{workdir}/f").checksum == checksum.of_bytes(data)


class TestVersionsAndChecksums:
    def test_each_commit_raises_the_version_and_records_the_checksum(
        self, client: Client, workdir: str
    ) -> None:
        for version, content in enumerate([b"a", b"bb", b"ccc"], start=1):
            write_file(client, f"{workdir}/v", content)
            info = client.stat(f"{workdir}/v")
            assert (info.version, info.size) == (version, len(content))
            assert info.checksum == checksum.of_bytes(content)

    def test_a_download_whose_every_replica_has_rotten_fails_and_writes_nothing(
        self, cluster, client: Client, workdir: str, tmp_path: Path
    ) -> None:
        """With no good replica left the error is E_RESOURCE (tests/integration/
        test_integrity.py has the files with a good replica to fall back on)."""
        write_file(client, f"{workdir}/rot", b"precious bytes" * 1000)
        info = client.stat(f"{workdir}/rot")

        def stored() -> list[Path]:
            return [
                p
                for n in range(1, 4)
                for p in (cluster.layout.slave_dir(n) / "objects").rglob(f"*.{info.checksum}")
            ]

        wait_until(lambda: len(stored()) == 2, what="the second replica")
        for replica in stored():  # every replica rots: nothing good is left to read
            with open(replica, "r+b") as rotten:
                rotten.seek(100)
                rotten.write(b"X")
        with pytest.raises(errors.ResourceError) as caught:
            client.download(f"{workdir}/rot", tmp_path / "rot")
        assert caught.value.code == errors.E_RESOURCE
        assert "holds good bytes" in str(caught.value)
        assert not (tmp_path / "rot").exists()


class TestAtomicCommit:
    def test_readers_see_the_old_version_until_close(
        self, cluster, client: Client, workdir: str
    ) -> None:
        write_file(client, f"{workdir}/f", b"old")
        other = connect(cluster)
        with client.open(f"{workdir}/f", WRITE | TRUNC) as writer:
            writer.write(b"new content")
            writer.flush()
            assert read_file(other, f"{workdir}/f") == b"old"
        assert read_file(other, f"{workdir}/f") == b"new content"
        other.close()

    def test_a_new_file_is_not_listed_until_committed(self, client: Client, workdir: str):
        writer = client.open(f"{workdir}/new", WRITE)
        writer.write(b"partial")
        writer.flush()
        assert [e.name for e in client.ls(workdir)] == []
        writer.close()
        assert [e.name for e in client.ls(workdir)] == ["new"]

    def test_second_writer_gets_e_busy(self, client: Client, workdir: str) -> None:
        write_file(client, f"{workdir}/f", b"x")
        with client.open(f"{workdir}/f", WRITE):
            with pytest.raises(errors.SectorBusyError):
                client.open(f"{workdir}/f", WRITE)
            with pytest.raises(errors.SectorBusyError):
                client.rm(f"{workdir}/f")
        with client.open(f"{workdir}/new", WRITE), pytest.raises(errors.SectorBusyError):
            client.open(f"{workdir}/new", WRITE)

    def test_abort_keeps_the_previous_version(self, client: Client, workdir: str) -> None:
        write_file(client, f"{workdir}/f", b"keep me")
        with pytest.raises(RuntimeError), client.open(f"{workdir}/f", WRITE | TRUNC) as handle:
            handle.write(b"discard me")
            raise RuntimeError("the writer changes its mind")
        assert read_file(client, f"{workdir}/f") == b"keep me"
        write_file(client, f"{workdir}/f", b"writable again")

    def test_a_killed_writer_leaves_the_previous_version(
        self, cluster, client: Client, workdir: str
    ) -> None:
        write_file(client, f"{workdir}/f", b"survivor")
        host, port = cluster.master_address
        script = textwrap.dedent(
            f"""
            import os, sys
            from sector.client import Client
            c = Client({host!r}, {port})
            c.login("test", "xxx", {str(cluster.layout.cert)!r})
            f = c.open({workdir + "/f"!r}, 6)
            f.write(b"doomed" * 100000)
            f.flush()
            print("written", flush=True)
            sys.stdin.read()
            """
        )
        writer = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert writer.stdout.readline() == b"written\n"
        writer.kill()
        writer.wait()
        assert read_file(client, f"{workdir}/f") == b"survivor"
        # The lease dies with the writer's connection, so the file is writable again.
        wait_until(lambda: _try_write(client, f"{workdir}/f", b"next"), what="lease release")
        assert read_file(client, f"{workdir}/f") == b"next"


def _try_write(client: Client, path: str, data: bytes) -> bool:
    try:
        write_file(client, path, data)
    except errors.SectorBusyError:
        return False
    return True


class TestScale:
    def test_200_mb_round_trip_is_identical(
        self, client: Client, workdir: str, tmp_path: Path
    ) -> None:
        local = tmp_path / "big.bin"
        digest = random_file(local, 200 * 1024 * 1024)
        client.upload(local, f"{workdir}/big")
        local.unlink()
        out = tmp_path / "back.bin"
        client.download(f"{workdir}/big", out)
        assert sha256_of(out) == digest

    def test_1000_small_files(self, client: Client, workdir: str) -> None:
        for number in range(1000):
            write_file(client, f"{workdir}/many/{number:04d}", b"%d\x00" % number)
        listing = client.ls(f"{workdir}/many")
        assert [e.name for e in listing] == [f"{n:04d}" for n in range(1000)]
        assert read_file(client, f"{workdir}/many/0777") == b"777\x00"

    def test_eight_threads_of_concurrent_readers_and_writers(
        self, cluster, client: Client, workdir: str
    ) -> None:
        failures: list[str] = []

        def work(number: int) -> None:
            own = connect(cluster)
            try:
                for round_number in range(10):
                    data = bytes([number, round_number]) * 50_000
                    write_file(own, f"{workdir}/t{number}", data)
                    if read_file(own, f"{workdir}/t{number}") != data:
                        failures.append(f"thread {number} round {round_number}")
            except Exception as exc:  # reported, then asserted below
                failures.append(f"thread {number}: {exc!r}")
            finally:
                own.close()

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert failures == []
        assert all(client.stat(f"{workdir}/t{n}").version == 10 for n in range(8))


def _stored_objects(cluster) -> dict[tuple[int, str], int]:
    """(slave number, object file name) -> inode, across every slave of the cluster."""
    return {
        (number, path.name): path.stat().st_ino
        for number in range(1, 4)
        for path in (cluster.layout.slave_dir(number) / "objects").rglob("*.*.*")
    }


def _replication_settled(client: Client) -> bool:
    """No replica being copied or waiting to be: the slaves' objects stay as they are."""
    health = client.sysinfo()["master"]["health"]
    return health["scanned"] and not any(
        health[k] for k in ("under_replicated", "copying", "queued")
    )


class TestDataStaysPut:
    def test_moving_a_directory_of_many_files_touches_no_data(
        self, cluster, client: Client, workdir: str
    ) -> None:
        for number in range(200):
            write_file(client, f"{workdir}/tree/sub{number % 4}/{number}", b"%d" % number)
        # the second replicas are made in the background: let them land first
        wait_until(lambda: _replication_settled(client), timeout=60, what="the copies")
        before = _stored_objects(cluster)
        client.move(f"{workdir}/tree", f"{workdir}/moved/here")
        after = _stored_objects(cluster)
        # no object was rewritten (on a shared cluster, replicas are made and other tests'
        # objects deleted meanwhile, in the background: those come and go by themselves)
        assert len(after) >= 200
        assert {key for key in before.keys() & after.keys() if before[key] != after[key]} == set()
        assert not client.exists(f"{workdir}/tree")
        assert read_file(client, f"{workdir}/moved/here/sub3/199") == b"199"

    def test_cp_is_done_by_the_slave_that_holds_the_source(
        self, client: Client, workdir: str
    ) -> None:
        write_file(client, f"{workdir}/src", b"copy on the slave" * 1000)
        client.copy(f"{workdir}/src", f"{workdir}/dst")
        source, copy = client.stat(f"{workdir}/src"), client.stat(f"{workdir}/dst")
        # the copy's first replica is made beside the source (more follow in the background)
        assert set(copy.slaves) & set(source.slaves)
        assert (copy.size, copy.checksum) == (source.size, source.checksum)
        assert read_file(client, f"{workdir}/dst") == b"copy on the slave" * 1000


def test_a_local_write_failure_is_reported_as_such_not_as_a_dead_replica(
    client: Client, workdir: str
) -> None:
    write_file(client, f"{workdir}/f", b"z" * 3_000_000)
    with (
        open("/dev/full", "wb") as full_disk,
        client.open(f"{workdir}/f", READ) as handle,
        pytest.raises(errors.SectorError) as caught,
    ):
        handle.read_to_file(full_disk)
    assert caught.value.code == errors.E_LOCALFILE


def test_an_expired_read_token_is_renewed_without_the_reader_noticing(
    tmp_path: Path,
) -> None:
    layout = Layout(tmp_path / "home")
    write_conf(layout, port=0)
    conf = layout.conf / "master.conf"
    conf.write_text(conf.read_text().replace("DATA_TOKEN_TTL\n\t600", "DATA_TOKEN_TTL\n\t0.5"))
    content = bytes(range(256)) * 12_288  # 3 MiB: more than one read-ahead
    with LocalCluster(home=layout.home, slaves=1, port=0) as cluster:
        reader = connect(cluster)
        write_file(reader, "/f", content)
        opened = time.time()
        with reader.open("/f", READ) as handle:
            assert handle.read(10) == content[:10]
            first_token = handle.grant.token
            wait_until(lambda: time.time() > opened + 1.0, what="the token to expire")
            handle.seek(2 * 1024 * 1024)  # past the read-ahead: the slave is asked again
            assert handle.read() == content[2 * 1024 * 1024 :]
            assert handle.grant.token != first_token
        reader.close()
