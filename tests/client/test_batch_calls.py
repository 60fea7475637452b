"""Batch calls: many requests pipelined on the one master connection, each its own outcome.

A batch is the same calls made one after another, only without waiting for
each reply before sending the next: the results come back in order, an item
that fails holds its exception and stops none of the others, and nothing
in the batch is raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from sector.client import Client
from sector.client.session import PIPELINE_DEPTH, Stat
from sector.cluster import LocalCluster
from sector.errors import InvalidError, SectorConnectionError, SectorError
from sector.protocol import master as wire


def put(client: Client, path: str, data: bytes = b"x") -> None:
    with client.open(path, "wb") as remote:
        remote.write(data)


def names(client: Client, path: str) -> list[str]:
    return [entry.name for entry in client.ls(path)]


def test_stat_many_gives_each_path_its_stat_or_its_error_in_order(
    client: Client, workdir: str
) -> None:
    put(client, f"{workdir}/a", b"one")
    put(client, f"{workdir}/b", b"three")
    results = client.stat_many([f"{workdir}/b", f"{workdir}/missing", "no/../../root", workdir])
    assert isinstance(results[0], Stat) and (results[0].name, results[0].size) == ("b", 5)
    assert isinstance(results[1], FileNotFoundError) and results[1].path == f"{workdir}/missing"
    assert isinstance(results[2], InvalidError)
    assert isinstance(results[3], Stat) and results[3].isdir


def test_a_batch_longer_than_the_pipeline_keeps_every_reply_with_its_request(
    client: Client, workdir: str
) -> None:
    count = PIPELINE_DEPTH * 4 + 7
    made = client.mkdir_many(f"{workdir}/d{i:04d}" for i in range(count))
    assert made == [None] * count
    stats = client.stat_many(f"{workdir}/d{i:04d}" for i in reversed(range(count)))
    assert [stat.name for stat in stats] == [f"d{i:04d}" for i in reversed(range(count))]


def test_exists_many_tells_missing_from_present(client: Client, workdir: str) -> None:
    put(client, f"{workdir}/here")
    assert client.exists_many([f"{workdir}/here", f"{workdir}/gone", workdir]) == [
        True,
        False,
        True,
    ]


def test_a_failed_item_stops_none_of_the_others(client: Client, workdir: str) -> None:
    outcomes = client.mkdir_many([f"{workdir}/x", f"{workdir}/x", f"{workdir}/y"])
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], FileExistsError)
    assert names(client, workdir) == ["x", "y"]


def test_moves_run_in_order_so_a_later_pair_may_use_an_earlier_result(
    client: Client, workdir: str
) -> None:
    put(client, f"{workdir}/a", b"payload")
    outcomes = client.move_many(
        [
            (f"{workdir}/a", f"{workdir}/b"),
            (f"{workdir}/b", f"{workdir}/c"),
            (f"{workdir}/a", f"{workdir}/d"),  # a is gone by now
        ]
    )
    assert outcomes[:2] == [None, None] and isinstance(outcomes[2], FileNotFoundError)
    assert names(client, workdir) == ["c"]


def test_rm_many_removes_each_and_reports_what_was_not_there(client: Client, workdir: str) -> None:
    for name in "abc":
        put(client, f"{workdir}/{name}")
    client.mkdir(f"{workdir}/full/sub")
    outcomes = client.rm_many(
        [f"{workdir}/a", f"{workdir}/nothing", f"{workdir}/full", f"{workdir}/c"],
        recursive=False,
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], FileNotFoundError)
    assert isinstance(outcomes[2], OSError) and outcomes[2].code == -1006  # E_NOEMPTY
    assert names(client, workdir) == ["b", "full"]


def test_ls_many_lists_each_directory(client: Client, workdir: str) -> None:
    client.mkdir(f"{workdir}/one")
    put(client, f"{workdir}/one/f")
    listings = client.ls_many([f"{workdir}/one", f"{workdir}/none", workdir])
    assert [entry.name for entry in listings[0]] == ["f"]
    assert isinstance(listings[1], FileNotFoundError)
    assert [entry.name for entry in listings[2]] == ["one"]


def test_call_many_takes_any_request_and_waits_out_long_running_ones(
    client: Client, workdir: str
) -> None:
    put(client, f"{workdir}/src", b"copied by the slave")
    replies = client.call_many(
        [
            wire.Copy(f"{workdir}/src", f"{workdir}/dst"),  # long-running: Working may come
            wire.Stat(f"{workdir}/dst"),
            wire.Ping(),
        ]
    )
    assert isinstance(replies[1], wire.StatReply) and replies[1].entry.size == 19
    assert isinstance(replies[2], wire.PingReply)


def test_call_many_refuses_what_is_not_a_request(client: Client) -> None:
    with pytest.raises(TypeError, match="request messages"):
        client.call_many([wire.Stat("/"), "/"])  # type: ignore[list-item]


def test_other_threads_calls_wait_for_the_batch_and_get_their_own_replies(
    client: Client, workdir: str
) -> None:
    client.mkdir_many(f"{workdir}/d{i}" for i in range(50))
    failures: list[BaseException] = []

    def loop(work: Callable[[], None]) -> None:
        try:
            for _ in range(20):
                work()
        except BaseException as exc:
            failures.append(exc)

    def batch() -> None:
        stats = client.stat_many(f"{workdir}/d{i}" for i in range(50))
        assert [stat.name for stat in stats] == [f"d{i}" for i in range(50)]

    def single() -> None:
        assert client.stat(workdir).isdir

    threads = [threading.Thread(target=loop, args=(work,)) for work in (batch, single, batch)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_batch_survives_a_master_restart(make_cluster: Callable[..., LocalCluster]) -> None:
    running = make_cluster(slaves=1)
    client = running.connect()
    try:
        assert client.mkdir_many(["/a", "/b"]) == [None, None]
        running.restart_master()
        assert [stat.name for stat in client.stat_many(["/a", "/b"])] == ["a", "b"]
    finally:
        client.close()


def test_when_the_master_is_gone_every_slot_holds_the_connection_error(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    running = make_cluster(slaves=1)
    client = running.connect()
    try:
        master = running.process("master").popen
        master.kill()
        master.wait(timeout=30)
        outcomes = client.rm_many(["/a", "/b", "/c"])
        assert len(outcomes) == 3
        assert all(isinstance(outcome, SectorConnectionError) for outcome in outcomes)
        assert all(isinstance(outcome, SectorError) for outcome in outcomes)
    finally:
        client.close()


def test_write_many_commits_each_file_whole_and_visible_to_others(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    files = [(f"{workdir}/f{i}", b"file %d " % i * (i * 300)) for i in range(30)]
    stats = client.write_many(files)
    assert [(stat.name, stat.size) for stat in stats if isinstance(stat, Stat)] == [
        (f"f{i}", len(data)) for i, (_, data) in enumerate(files)
    ]
    other = cluster.connect()
    try:
        for path, data in files:
            with other.open(path) as remote:
                assert remote.read() == data
    finally:
        other.close()


def test_write_many_gives_a_failed_file_its_error_and_keeps_its_old_version(
    client: Client, workdir: str
) -> None:
    put(client, f"{workdir}/taken", b"the old version")
    outcomes = client.write_many(
        [(f"{workdir}/new", b"1"), (f"{workdir}/taken", b"2"), ("bad/../../path", b"3")],
        exclusive=True,
    )
    assert isinstance(outcomes[0], Stat)
    assert isinstance(outcomes[1], FileExistsError)
    assert isinstance(outcomes[2], InvalidError)
    assert client.read_many([f"{workdir}/taken"]) == [b"the old version"]


def test_read_many_reads_each_file_or_gives_its_error(client: Client, workdir: str) -> None:
    big = bytes(range(256)) * 800  # 200 kB: several checked blocks
    put(client, f"{workdir}/big", big)
    put(client, f"{workdir}/empty", b"")
    client.mkdir(f"{workdir}/dir")
    outcomes = client.read_many(
        [f"{workdir}/big", f"{workdir}/missing", f"{workdir}/empty", f"{workdir}/dir"]
    )
    assert outcomes[0] == big and outcomes[2] == b""
    assert isinstance(outcomes[1], FileNotFoundError)
    assert isinstance(outcomes[3], IsADirectoryError)


def test_many_small_files_round_trip_through_the_batches(client: Client, workdir: str) -> None:
    count = PIPELINE_DEPTH * 3 + 5
    files = [(f"{workdir}/s{i:04d}", b"%d" % i) for i in range(count)]
    assert all(isinstance(stat, Stat) for stat in client.write_many(files))
    assert client.read_many(path for path, _ in files) == [data for _, data in files]
