"""sector.aio: the asyncio client against a real cluster.

Many calls in flight on one master connection each get their own reply;
small files written through it are whole, durable and visible to the blocking
client when ``write_file`` returns, and reads are checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from sector.aio import AsyncClient
from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import E_PASSWORD, SectorConnectionError, SecurityError
from sector.protocol import master as wire
from tests.support import PASSWORD, USER, wait_until

T = TypeVar("T")


def run(cluster: LocalCluster, work: Callable[[AsyncClient], Awaitable[T]]) -> T:
    """``work`` with an AsyncClient logged in to ``cluster``, closed afterwards."""

    async def session() -> T:
        assert cluster.master_address is not None
        async with AsyncClient(*cluster.master_address) as client:
            await client.login(USER, PASSWORD, cluster.layout.cert)
            return await work(client)

    return asyncio.run(session())


def test_namespace_calls_behave_as_the_blocking_clients(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    async def work(aio: AsyncClient) -> None:
        await aio.mkdir(f"{workdir}/a/b")
        with pytest.raises(FileExistsError):
            await aio.mkdir(f"{workdir}/a")
        await aio.move(f"{workdir}/a", f"{workdir}/c")
        assert [entry.name for entry in await aio.ls(workdir)] == ["c"]
        assert (await aio.stat(f"{workdir}/c/b")).isdir
        assert not await aio.exists(f"{workdir}/a")
        await aio.rm(f"{workdir}/c")
        with pytest.raises(FileNotFoundError):
            await aio.stat(f"{workdir}/c")

    run(cluster, work)
    assert client.ls(workdir) == []


def test_calls_gathered_at_once_each_get_their_own_reply(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    count = 600
    assert client.mkdir_many(f"{workdir}/d{i:04d}" for i in range(count)) == [None] * count

    async def work(aio: AsyncClient) -> list[str]:
        stats = await asyncio.gather(*(aio.stat(f"{workdir}/d{i:04d}") for i in range(count)))
        return [stat.name for stat in stats]

    assert run(cluster, work) == [f"d{i:04d}" for i in range(count)]


def test_a_cancelled_call_leaves_the_others_their_replies(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    client.mkdir_many(f"{workdir}/d{i}" for i in range(100))

    async def work(aio: AsyncClient) -> list[str]:
        tasks = [asyncio.create_task(aio.stat(f"{workdir}/d{i}")) for i in range(100)]
        await asyncio.sleep(0)  # yield once: the requests are on their way
        for task in tasks[::2]:
            task.cancel()
        done = await asyncio.gather(*tasks[1::2])
        after = await aio.stat(f"{workdir}/d7")
        return [stat.name for stat in done] + [after.name]

    assert run(cluster, work) == [f"d{i}" for i in range(1, 100, 2)] + ["d7"]


def test_gather_gives_each_request_its_reply_or_its_error(
    cluster: LocalCluster, workdir: str
) -> None:
    async def work(aio: AsyncClient) -> list[object]:
        return await aio.gather([wire.Stat(workdir), wire.Stat(f"{workdir}/none"), wire.Ping()])

    replies = run(cluster, work)
    assert isinstance(replies[0], wire.StatReply)
    assert isinstance(replies[1], FileNotFoundError)
    assert isinstance(replies[2], wire.PingReply)


def test_a_written_file_is_whole_and_visible_to_everyone_when_write_file_returns(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    data = bytes(range(256)) * 1000  # 256 kB: several checked blocks

    async def work(aio: AsyncClient) -> bytes:
        stat = await aio.write_file(f"{workdir}/f", data)
        assert (stat.size, stat.name) == (len(data), "f")
        with client.open(f"{workdir}/f") as remote:  # another client, at once
            assert remote.read() == data
        return await aio.read_file(f"{workdir}/f")

    assert run(cluster, work) == data


def test_small_files_written_and_read_concurrently(
    cluster: LocalCluster, client: Client, workdir: str
) -> None:
    async def work(aio: AsyncClient) -> list[bytes]:
        await asyncio.gather(
            *(aio.write_file(f"{workdir}/f{i}", b"file %d" % i) for i in range(40))
        )
        return await asyncio.gather(*(aio.read_file(f"{workdir}/f{i}") for i in range(40)))

    assert run(cluster, work) == [b"file %d" % i for i in range(40)]
    assert len(client.ls(workdir)) == 40


def test_exclusive_writes_empty_files_and_missing_ones(cluster: LocalCluster, workdir: str) -> None:
    async def work(aio: AsyncClient) -> None:
        await aio.write_file(f"{workdir}/empty", b"", exclusive=True)
        assert await aio.read_file(f"{workdir}/empty") == b""
        with pytest.raises(FileExistsError):
            await aio.write_file(f"{workdir}/empty", b"again", exclusive=True)
        assert await aio.read_file(f"{workdir}/empty") == b""
        with pytest.raises(FileNotFoundError):
            await aio.read_file(f"{workdir}/missing")
        with pytest.raises(IsADirectoryError):
            await aio.read_file(workdir)

    run(cluster, work)


def test_secure_files_travel_over_tls(cluster: LocalCluster, workdir: str) -> None:
    async def work(aio: AsyncClient) -> bytes:
        await aio.write_file(f"{workdir}/s", b"secret" * 1000, secure=True)
        return await aio.read_file(f"{workdir}/s", secure=True)

    assert run(cluster, work) == b"secret" * 1000


def test_a_wrong_password_is_refused(cluster: LocalCluster) -> None:
    async def work() -> None:
        assert cluster.master_address is not None
        async with AsyncClient(*cluster.master_address) as aio:
            with pytest.raises(SecurityError) as refused:
                await aio.login(USER, "wrong", cluster.layout.cert)
            assert refused.value.code == E_PASSWORD
            with pytest.raises(SecurityError, match="not logged in"):
                await aio.stat("/")

    asyncio.run(work())


def test_calls_carry_on_after_a_master_restart(make_cluster: Callable[..., LocalCluster]) -> None:
    running = make_cluster(slaves=1)

    async def work(aio: AsyncClient) -> None:
        await aio.write_file("/kept", b"before the restart")
        running.restart_master()
        stats = await asyncio.gather(*(aio.stat("/kept") for _ in range(10)))
        assert {stat.size for stat in stats} == {18}
        # the slave registers again on its own time: until then the file has no live replica
        other = running.connect()
        try:
            wait_until(lambda: other.stat("/kept").slaves, what="the slave to register again")
        finally:
            other.close()
        assert await aio.read_file("/kept") == b"before the restart"

    run(running, work)


def test_calls_waiting_when_the_master_dies_fail_with_connection_errors(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    running = make_cluster(slaves=1)

    async def work(aio: AsyncClient) -> list[object]:
        await aio.mkdir("/x")
        master = running.process("master").popen
        master.kill()
        master.wait(timeout=30)
        return await asyncio.gather(*(aio.stat("/x") for _ in range(5)), return_exceptions=True)

    outcomes = run(running, work)
    assert all(isinstance(outcome, SectorConnectionError) for outcome in outcomes)
