"""A write's slave reports its commit to the master (``Write.record``): a create costs
its client one request to the master (``open``), not two, with every guarantee kept."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import SectorNotFoundError
from sector.protocol.data import CommitReply, DataSession
from sector.protocol.master import Close, CloseReply, Open
from sector.protocol.messages import WRITE, Request, replies_to
from sector.transport import receive_reply
from tests.support import connect


def requests_sent(client: Client, monkeypatch: pytest.MonkeyPatch) -> list[type[Request]]:
    """The types of the requests ``client`` sends its master from now on."""
    sent: list[type[Request]] = []
    call = client.call

    def counted(request: Request, *args: Any, **kwargs: Any) -> Any:
        sent.append(type(request))
        return call(request, *args, **kwargs)

    monkeypatch.setattr(client, "call", counted)
    return sent


def test_a_create_asks_the_master_once_and_is_seen_by_everyone_when_close_returns(
    client: Client, cluster: LocalCluster, workdir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = connect(cluster)
    try:
        sent = requests_sent(client, monkeypatch)
        with client.open(f"{workdir}/small", "wb") as handle:
            handle.write(b"x" * 1000)
        assert sent == [Open]
        assert handle.committed is not None and handle.committed.size == 1000
        seen = other.stat(f"{workdir}/small")
        assert (seen.size, seen.timestamp) == (1000, handle.committed.timestamp)
        with other.open(f"{workdir}/small", "rb") as reader:
            assert reader.read() == b"x" * 1000
    finally:
        other.close()


def write_raw(client: Client, path: str, data: bytes, record: bool) -> tuple[Any, CommitReply]:
    """Write ``path`` through the data conversation itself: the grant and the commit reply."""
    grant = client.call(Open(path, WRITE))
    session = DataSession()
    with socket.create_connection(tuple(grant.slave)) as sock:
        sock.sendall(session.begin_write(grant.token, [], record))
        sock.sendall(session.put(0, len(data)) + data + session.commit())
        reply = receive_reply(sock, session)
    assert isinstance(reply, CommitReply)
    return grant, reply


def test_the_slave_relays_the_masters_record_of_the_commit(client: Client, workdir: str) -> None:
    grant, reply = write_raw(client, f"{workdir}/relayed", b"abc", record=True)
    outcome = replies_to(Close).decode(reply.closed)
    assert isinstance(outcome, CloseReply)
    assert (outcome.entry.size, outcome.entry.name) == (3, "relayed")
    assert client.stat(f"{workdir}/relayed").size == 3
    # a client whose slave lost that answer closes with the receipt: the same answer
    again = client.call(Close(grant.lease, reply.receipt))
    assert again.entry == outcome.entry


def test_without_record_nothing_is_visible_until_the_client_closes(
    client: Client, workdir: str
) -> None:
    grant, reply = write_raw(client, f"{workdir}/own", b"abcd", record=False)
    assert reply.closed == b""
    with pytest.raises(SectorNotFoundError):
        client.stat(f"{workdir}/own")
    done = client.call(Close(grant.lease, reply.receipt))
    assert done.entry.size == 4 == client.stat(f"{workdir}/own").size


def test_creates_from_many_threads_each_get_their_own_record(
    cluster: LocalCluster, workdir: str
) -> None:
    """Commits reported together (one report while another is on its way) are each
    recorded for their own writer."""
    errors: list[BaseException] = []

    def create(number: int) -> None:
        client = connect(cluster)
        try:
            for item in range(20):
                data = f"{number}-{item}".encode() * (item + 1)
                with client.open(f"{workdir}/t{number}-{item}", "wb") as handle:
                    handle.write(data)
                assert handle.committed is not None and handle.committed.size == len(data)
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reader = connect(cluster)
    try:
        names = {entry.name for entry in reader.ls(workdir)}
        assert names == {f"t{n}-{i}" for n in range(6) for i in range(20)}
        with reader.open(f"{workdir}/t3-7", "rb") as handle:
            assert handle.read() == b"3-7" * 8
    finally:
        reader.close()
