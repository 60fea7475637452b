"""SectorFileSystem: what it adds to fsspec's defaults, against a real cluster."""

from __future__ import annotations

import pickle
from datetime import datetime, timezone
from pathlib import Path

import fsspec
import pytest
from fsspec.callbacks import Callback

from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import SecurityError
from sector.fs import SectorFileSystem
from tests.support import slave_addresses

from ..conftest import USER


def test_urls_name_the_cluster_and_strip_to_sector_paths() -> None:
    strip = SectorFileSystem._strip_protocol
    assert strip("sector://test@10.0.0.5:6001/data/x.csv") == "/data/x.csv"
    assert strip("sector://host:6000/") == "/"
    assert strip("sector://host:6000") == "/"
    assert strip("sector:///data/") == "/data"
    assert strip("/data/dir/") == "/data/dir"
    assert strip("data/x") == "/data/x"
    assert strip(["sector://h:1/a", "/b"]) == ["/a", "/b"]
    kwargs = SectorFileSystem._get_kwargs_from_urls
    assert kwargs("sector://alice@10.0.0.5:6001/x") == {
        "host": "10.0.0.5",
        "port": 6001,
        "user": "alice",
    }
    assert kwargs("sector://h/x") == {"host": "h"}
    assert kwargs("sector:///x") == {}
    assert kwargs("/x") == {}
    with pytest.raises(ValueError, match="password does not belong in a URL"):
        kwargs("sector://alice:secret@h:1/x")


def test_a_url_alone_reaches_the_cluster_with_the_environment_supplying_the_password(
    cluster: LocalCluster, url: str, sector_env: None
) -> None:
    fs, path = fsspec.core.url_to_fs(f"{url}/hello.txt")
    assert isinstance(fs, SectorFileSystem)
    assert (fs.target.host, fs.target.port) == cluster.master_address
    fs.pipe_file(path, b"hi")
    with fsspec.open(f"{url}/hello.txt", "rb") as f:
        assert f.read() == b"hi"
    assert fs.unstrip_protocol(path) == f"{url}/hello.txt"


def test_a_missing_password_is_a_clear_error_at_first_use(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SECTOR_PASSWORD", raising=False)
    monkeypatch.setenv("SECTOR_HOME", str(tmp_path))  # no client.conf there
    host, port = cluster.master_address  # type: ignore[misc]
    fs = SectorFileSystem(host=host, port=port, user="someone", skip_instance_cache=True)
    with pytest.raises(SecurityError, match="no password for user someone"):
        fs.ls("/")


def test_ls_gives_full_paths_and_sector_fields(fs: SectorFileSystem, workdir: str) -> None:
    fs.pipe_file(f"{workdir}/a.bin", b"12345")
    fs.makedirs(f"{workdir}/sub")
    listing = {e["name"]: e for e in fs.ls(workdir)}
    assert set(listing) == {f"{workdir}/a.bin", f"{workdir}/sub"}
    entry = listing[f"{workdir}/a.bin"]
    assert entry["type"] == "file" and entry["size"] == 5 and entry["version"] == 1
    assert len(entry["checksum"]) == 32
    assert listing[f"{workdir}/sub"]["type"] == "directory"
    assert sorted(fs.ls(workdir, detail=False)) == sorted(listing)
    # a file lists as itself, and a directory holding a file of its own name as its entry
    assert fs.ls(f"{workdir}/a.bin", detail=False) == [f"{workdir}/a.bin"]
    fs.pipe_file(f"{workdir}/sub/sub", b"x")
    assert fs.ls(f"{workdir}/sub", detail=False) == [f"{workdir}/sub/sub"]
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{workdir}/missing")


def test_info_carries_the_holders_and_times(fs: SectorFileSystem, workdir: str) -> None:
    fs.pipe_file(f"{workdir}/f", b"data")
    info = fs.info(f"{workdir}/f")
    assert info["slaves"] and all(":" in s for s in info["slaves"])
    assert fs.created(f"{workdir}/f") == fs.modified(f"{workdir}/f")
    assert abs(fs.modified(f"{workdir}/f") - datetime.now(timezone.utc)).total_seconds() < 60
    created = fs.created(f"{workdir}/f")
    fs.pipe_file(f"{workdir}/f", b"data, rewritten")
    assert fs.created(f"{workdir}/f") == created  # a rewrite keeps it
    assert fs.modified(f"{workdir}/f") >= created
    fs.mv(f"{workdir}/f", f"{workdir}/g")
    assert fs.created(f"{workdir}/g") == created  # so does a rename
    fs.makedirs(f"{workdir}/d")
    assert fs.info(f"{workdir}/d")["created"] > 0


def test_checksum_and_ukey_come_from_the_stored_checksum_and_version(
    fs: SectorFileSystem, workdir: str
) -> None:
    fs.pipe_file(f"{workdir}/a", b"same bytes")
    fs.pipe_file(f"{workdir}/b", b"same bytes")
    assert fs.checksum(f"{workdir}/a") == fs.checksum(f"{workdir}/b")
    assert fs.checksum(f"{workdir}/a") == int(fs.info(f"{workdir}/a")["checksum"], 16)
    before = fs.ukey(f"{workdir}/a")
    fs.pipe_file(f"{workdir}/a", b"same bytes")
    assert fs.ukey(f"{workdir}/a") != before  # a new version, though the bytes are equal
    assert fs.ukey(f"{workdir}/a").startswith("v2-xxh3-64k:")


def test_mkdir_and_makedirs_follow_fsspec_rules(fs: SectorFileSystem, workdir: str) -> None:
    fs.mkdir(f"{workdir}/a/b/c")
    assert fs.isdir(f"{workdir}/a/b")
    with pytest.raises(FileExistsError):
        fs.mkdir(f"{workdir}/a/b/c")
    with pytest.raises(FileExistsError):
        fs.makedirs(f"{workdir}/a/b")
    fs.makedirs(f"{workdir}/a/b", exist_ok=True)
    with pytest.raises(FileNotFoundError):
        fs.mkdir(f"{workdir}/nope/x", create_parents=False)
    fs.pipe_file(f"{workdir}/file", b"")
    with pytest.raises(FileExistsError):
        fs.makedirs(f"{workdir}/file", exist_ok=True)


def test_rm_of_a_tree_is_one_request_and_refuses_a_full_directory_without_recursive(
    fs: SectorFileSystem, workdir: str
) -> None:
    for n in range(5):
        fs.pipe_file(f"{workdir}/t/d{n}/f", b"x")
    with pytest.raises(OSError, match="not empty"):
        fs.rm(f"{workdir}/t")
    fs.rm(f"{workdir}/t", recursive=True)
    assert not fs.exists(f"{workdir}/t")
    fs.pipe({f"{workdir}/g1.csv": b"1", f"{workdir}/g2.csv": b"2", f"{workdir}/keep": b"3"})
    fs.rm(f"{workdir}/g*.csv")
    assert fs.ls(workdir, detail=False) == [f"{workdir}/keep"]
    with pytest.raises(FileNotFoundError):
        fs.rm(f"{workdir}/missing")


def test_mv_moves_a_directory_in_one_change_and_replaces_a_file(
    fs: SectorFileSystem, workdir: str
) -> None:
    fs.pipe_file(f"{workdir}/src/deep/f", b"payload")
    oid_before = fs.info(f"{workdir}/src/deep/f")["checksum"]
    fs.mv(f"{workdir}/src", f"{workdir}/dst")
    assert fs.cat_file(f"{workdir}/dst/deep/f") == b"payload"
    assert fs.info(f"{workdir}/dst/deep/f")["checksum"] == oid_before
    assert not fs.exists(f"{workdir}/src")
    fs.makedirs(f"{workdir}/into")
    fs.mv(f"{workdir}/dst", f"{workdir}/into")  # an existing directory receives it
    assert fs.exists(f"{workdir}/into/dst/deep/f")
    fs.pipe({f"{workdir}/a": b"new", f"{workdir}/b": b"old"})
    fs.mv(f"{workdir}/a", f"{workdir}/b")
    assert fs.cat_file(f"{workdir}/b") == b"new" and not fs.exists(f"{workdir}/a")
    fs.makedirs(f"{workdir}/into/b")
    with pytest.raises(IsADirectoryError):
        fs.mv(f"{workdir}/b", f"{workdir}/into")  # into/b is a directory: not replaced
    assert fs.cat_file(f"{workdir}/b") == b"new"


def test_mv_of_a_glob_puts_each_match_into_the_directory(
    fs: SectorFileSystem, workdir: str
) -> None:
    fs.pipe({f"{workdir}/x1.csv": b"1", f"{workdir}/x2.csv": b"2"})
    fs.mv(f"{workdir}/x*.csv", f"{workdir}/out")
    assert sorted(fs.ls(f"{workdir}/out", detail=False)) == [
        f"{workdir}/out/x1.csv",
        f"{workdir}/out/x2.csv",
    ]


def test_cp_file_is_done_by_the_slave_and_replaces_an_existing_file(
    fs: SectorFileSystem, workdir: str
) -> None:
    fs.pipe({f"{workdir}/src": b"source bytes", f"{workdir}/dst": b"to be replaced"})
    fs.cp_file(f"{workdir}/src", f"{workdir}/copy")
    assert fs.cat_file(f"{workdir}/copy") == b"source bytes"
    assert fs.info(f"{workdir}/copy")["checksum"] == fs.info(f"{workdir}/src")["checksum"]
    fs.cp_file(f"{workdir}/src", f"{workdir}/dst")
    assert fs.cat_file(f"{workdir}/dst") == b"source bytes"
    assert sorted(fs.ls(workdir, detail=False)) == [
        f"{workdir}/copy",
        f"{workdir}/dst",
        f"{workdir}/src",
    ]  # no temporary left behind


class Recorder(Callback):
    """An fsspec callback that remembers what it was told."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int | None] = []
        self.updates: list[int] = []

    def set_size(self, size: int | None) -> None:
        self.sizes.append(size)

    def relative_update(self, inc: int = 1) -> None:
        self.updates.append(inc)


def test_put_and_get_are_verified_transfers_with_progress(
    fs: SectorFileSystem, workdir: str, tmp_path: Path
) -> None:
    local = tmp_path / "big.bin"
    data = bytes(range(256)) * 40_000  # ~10 MB: several chunks
    local.write_bytes(data)
    sent = Recorder()
    fs.put_file(str(local), f"{workdir}/big.bin", callback=sent)
    assert sent.sizes == [len(data)] and sum(sent.updates) == len(data)
    received = Recorder()
    fs.get_file(f"{workdir}/big.bin", str(tmp_path / "out" / "copy.bin"), callback=received)
    assert (tmp_path / "out" / "copy.bin").read_bytes() == data
    assert received.sizes == [len(data)] and sum(received.updates) == len(data)
    with pytest.raises(FileExistsError):
        fs.put_file(str(local), f"{workdir}/big.bin", mode="create")
    with open(tmp_path / "stream.bin", "wb") as out:
        fs.get_file(f"{workdir}/big.bin", out)
    assert (tmp_path / "stream.bin").read_bytes() == data


def test_cat_file_takes_python_slice_ranges(fs: SectorFileSystem, workdir: str) -> None:
    fs.pipe_file(f"{workdir}/r", b"0123456789")
    path = f"{workdir}/r"
    assert fs.cat_file(path) == b"0123456789"
    assert fs.cat_file(path, 2, 5) == b"234"
    assert fs.cat_file(path, -3) == b"789"
    assert fs.cat_file(path, 4, -4) == b"45"
    assert fs.cat_file(path, 8, 100) == b"89"
    assert fs.cat_file(path, 7, 3) == b""
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{workdir}/missing")
    fs.makedirs(f"{workdir}/d")
    with pytest.raises(IsADirectoryError):
        fs.cat_file(f"{workdir}/d")


def test_cat_ranges_keeps_the_order_asked_and_returns_errors_in_place(
    fs: SectorFileSystem, workdir: str
) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB
    fs.pipe_file(f"{workdir}/blob", blob)
    starts = [n * 9973 for n in range(40)]
    ends = [s + 5000 for s in starts]
    paths = [f"{workdir}/blob"] * 40
    assert fs.cat_ranges(paths, starts, ends) == [
        blob[s:e] for s, e in zip(starts, ends, strict=True)
    ]
    result = fs.cat_ranges([f"{workdir}/blob", f"{workdir}/none"], 0, 3)
    assert result[0] == blob[:3] and isinstance(result[1], FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges([f"{workdir}/blob", f"{workdir}/none"], 0, 3, on_error="raise")


def test_open_for_reading_is_a_seekable_buffered_file(fs: SectorFileSystem, workdir: str) -> None:
    data = bytes(range(256)) * 1000
    fs.pipe_file(f"{workdir}/f", data)
    with fs.open(f"{workdir}/f", "rb", block_size=4096) as f:
        assert f.read(10) == data[:10]
        f.seek(-100, 2)
        assert f.read() == data[-100:]
        f.seek(5000)
        assert f.read(3) == data[5000:5003]
        assert f.tell() == 5003
    with fs.open(f"{workdir}/f", "r", encoding="latin-1") as text:
        assert text.read(5) == data[:5].decode("latin-1")


def test_a_version_opened_for_reading_stays_readable_while_rewritten(
    fs: SectorFileSystem, workdir: str
) -> None:
    fs.pipe_file(f"{workdir}/v", b"A" * 100)
    with fs.open(f"{workdir}/v", "rb", block_size=16) as f:
        assert f.read(10) == b"A" * 10
        fs.pipe_file(f"{workdir}/v", b"B" * 100)
        assert f.read() == b"A" * 90
    assert fs.cat_file(f"{workdir}/v") == b"B" * 100


def test_a_written_file_appears_whole_at_close_and_an_exception_leaves_the_old_one(
    fs: SectorFileSystem, workdir: str
) -> None:
    path = f"{workdir}/w"
    fs.pipe_file(path, b"old")
    with fs.open(path, "wb", block_size=1024) as f:
        f.write(b"x" * 5000)  # several blocks already sent to the slave
        assert fs.cat_file(path) == b"old"
    assert fs.cat_file(path) == b"x" * 5000
    with pytest.raises(RuntimeError), fs.open(path, "wb", block_size=1024) as f:
        f.write(b"y" * 5000)
        raise RuntimeError("the writer fails")
    assert fs.cat_file(path) == b"x" * 5000
    with fs.open(path, "ab") as f:
        f.write(b"z")
    assert fs.cat_file(path) == b"x" * 5000 + b"z"
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")
    with fs.open(f"{workdir}/fresh", "xb") as f:
        f.write(b"new")
    assert fs.cat_file(f"{workdir}/fresh") == b"new"


def test_a_transaction_commits_every_file_at_its_end(fs: SectorFileSystem, workdir: str) -> None:
    with fs.transaction:
        with fs.open(f"{workdir}/t1", "wb") as f:
            f.write(b"1")
        with fs.open(f"{workdir}/t2", "wb") as f:
            f.write(b"2")
        assert not fs.exists(f"{workdir}/t1")
    assert fs.cat([f"{workdir}/t1", f"{workdir}/t2"]) == {
        f"{workdir}/t1": b"1",
        f"{workdir}/t2": b"2",
    }


def test_hosts_names_the_slaves_holding_the_file(
    fs: SectorFileSystem, workdir: str, client: Client, cluster: LocalCluster
) -> None:
    fs.pipe_file(f"{workdir}/h", b"here")
    hosts = fs.hosts(f"{workdir}/h")
    assert hosts == client.locate(f"{workdir}/h")
    slaves = set(slave_addresses(cluster))
    # one, or already two: the cluster keeps two replicas, made in the background
    assert hosts and set(hosts) <= slaves
    with pytest.raises(IsADirectoryError):
        fs.hosts(workdir)


def test_a_pickled_file_system_logs_in_again_where_it_lands(
    fs: SectorFileSystem, workdir: str
) -> None:
    fs.pipe_file(f"{workdir}/p", b"pickled")
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.cat_file(f"{workdir}/p") == b"pickled"
    assert clone.target.user == USER


def test_files_dropped_without_closing_leave_the_old_version_and_a_working_pool(
    fs: SectorFileSystem, workdir: str
) -> None:
    import gc

    path = f"{workdir}/dropped"
    fs.pipe_file(path, b"old")
    for _ in range(3):
        reader = fs.open(path, "rb", block_size=2)
        assert reader.read(1) == b"o"  # holds a data connection now
        writer = fs.open(path, "wb", block_size=2)
        writer.write(b"never committed")  # sent to the slave, not committed
        del reader, writer  # fsspec's cache refers back to its file: only gc frees them
        gc.collect()
    assert fs.cat_file(path) == b"old"
    fs.pipe_file(path, b"new")  # the abandoned writes hold no lease on the path
    assert fs.cat_ranges([path] * 8, 0, 3) == [b"new"] * 8


def test_large_reads_bypass_the_cache_and_small_ones_use_it_at_the_right_place(
    fs: SectorFileSystem, workdir: str
) -> None:
    data = bytes(range(256)) * (6 * 4096)  # 6 MiB: above the direct-read threshold
    fs.pipe_file(f"{workdir}/big", data)
    with fs.open(f"{workdir}/big", "rb") as f:
        assert f.read(10) == data[:10]  # through the cache
        assert f.read(5 * 1024 * 1024) == data[10 : 10 + 5 * 1024 * 1024]  # direct
        assert f.read(7) == data[10 + 5 * 1024 * 1024 :][:7]
        f.seek(3)
        assert f.read() == data[3:]  # direct, to the end
        assert f.read() == b""


def test_touch_without_truncate_only_moves_the_time(fs: SectorFileSystem, workdir: str) -> None:
    fs.pipe_file(f"{workdir}/kept", b"contents")
    fs.client.set_mtime(f"{workdir}/kept", 1000)
    fs.touch(f"{workdir}/kept", truncate=False)
    assert fs.cat_file(f"{workdir}/kept") == b"contents"
    assert fs.info(f"{workdir}/kept")["mtime"] > 1000
    fs.touch(f"{workdir}/new", truncate=False)
    assert fs.cat_file(f"{workdir}/new") == b""
    fs.touch(f"{workdir}/kept")
    assert fs.cat_file(f"{workdir}/kept") == b""
