"""A server never dies because one peer misbehaved: fuzzed frames, then real work.

Every frame is generated from the protocol's type definitions
(``tests/strategies.py``): well-typed messages of every kind a connection may
send, and the same messages broken. Each goes to a live master or slave of a
private cluster, and the answer is checked against the contract in
``sector.protocol``, which also says, through its own decoder, whether a frame
was valid. After the fuzzing a normal client must still write and read.

The default run takes a few seconds; ``-m slow`` runs many more examples.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import E_INVALID, E_SECURITY, E_SUPPORT
from sector.protocol.data import (
    SLAVE_REQUESTS,
    AbortWrite,
    Commit,
    Put,
    ReadReply,
    Truncate,
    Write,
)
from sector.protocol.framing import HEADER, ProtocolError, encode
from sector.protocol.master import (
    CLIENT_REQUESTS,
    GREETINGS,
    PUSHES,
    SLAVE_REPORTS,
    CacheRelease,
    Join,
    Login,
    Logout,
    Open,
    Register,
    RegisterReply,
    Usage,
    refusal,
)
from sector.protocol.messages import (
    PROTOCOL_VERSION,
    READ,
    TRUNC,
    WRITE,
    Error,
    InvalidMessage,
    Request,
    Vocabulary,
    replies_to,
)
from sector.transport import recv_body, recv_exact_into
from tests.strategies import corrupted, frames, ill_typed, messages
from tests.support import (
    PASSWORD,
    USER,
    admin,
    closed_by_peer,
    connect,
    issue_member,
    master_socket,
    start_cluster,
)

#: Examples per property in the default run (CI), and with ``-m slow``.
QUICK, THOROUGH = 100, 2000
#: The slave id of the fake member the fuzzing registers (a real certificate of the cluster).
MEMBER = "fuzz-member"

ERROR_ONLY = Vocabulary("an error reply", Error)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A private cluster to fuzz, with one slave."""
    cluster = start_cluster(tmp_path_factory.mktemp("fuzzed-home"), slaves=1)
    yield cluster
    cluster.stop()


# --- the master ----------------------------------------------------------------------

# Paths that exist (or soon will, as the fuzzing creates them) besides random ones.
_paths = st.one_of(
    st.sampled_from(["/", "/play", "/play/f", "/play/g", "/play/d/e", "", "//", "/.."]),
    st.text(max_size=12),
)
MASTER_FIELDS = {
    "path": _paths,
    "src": _paths,
    "dst": _paths,
    "mode": st.one_of(
        st.sampled_from([1, 2, 3, 4, 6, 8, 16, 32, 0, -1, 64]), st.integers(-(2**63), 2**63 - 1)
    ),
    "lease": st.integers(-1, 8),
}


class MasterLine:
    """A raw TLS connection to the master, logged in as the test user when asked; with
    ``member`` (a slave certificate and key), showing it, and registered as that slave."""

    def __init__(
        self,
        cluster: LocalCluster,
        login: bool = True,
        member: tuple[str, tuple[Path, Path]] | None = None,
    ):
        self.cluster, self.login, self.member = cluster, login, member
        self.sock: ssl.SSLSocket | None = None

    def open(self) -> ssl.SSLSocket:
        if self.sock is None:
            if self.member is not None:
                name, credential = self.member
                self.sock = master_socket(self.cluster, credential, timeout=30)
                # nothing to offer clients: no space, no objects
                greeting = Register(PROTOCOL_VERSION, name, "127.0.0.1", 1, Usage(0, 0, 0, 0))
                reply = self.ask(greeting, replies_to(Register))
                assert isinstance(reply, RegisterReply), reply
                return self.sock
            self.sock = master_socket(self.cluster, timeout=30)
            if self.login:
                reply = self.ask(Login(PROTOCOL_VERSION, USER, PASSWORD), replies_to(Login))
                assert not isinstance(reply, Error), reply
        return self.sock

    def ask(self, frame: object, replies: Vocabulary) -> Any:
        """Send ``frame`` and read its reply; a cache recall the master pushes meanwhile
        (the fuzzing may ask for cache leases) is released, as a client does."""
        self.send(frame)
        assert self.sock is not None
        while True:
            body = recv_body(self.sock)
            try:
                return replies.decode(body)
            except InvalidMessage:
                push = PUSHES.decode(body)
                self.send(CacheRelease(push.seq))

    def send(self, frame: object) -> None:
        self.open().sendall(_framed(frame))

    def hung_up(self) -> bool:
        assert self.sock is not None
        try:
            return self.sock.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _framed(frame: object) -> bytes:
    """A frame of ``frame``: a message or plain values, or an already encoded body."""
    if isinstance(frame, bytes):
        return HEADER.pack(len(frame)) + frame
    return bytes(encode(frame))


def _decoded(vocabulary: Vocabulary, frame: object) -> Request | ProtocolError:
    """What the protocol itself makes of ``frame``: the message, or why it is refused
    (an :class:`InvalidMessage`, or a plain ProtocolError for what is not msgpack)."""
    try:
        return vocabulary.decode(_framed(frame)[HEADER.size :])
    except ProtocolError as refused:
        return refused


def client_session_property(cluster: LocalCluster, examples: int) -> Callable[[], None]:
    line = MasterLine(cluster)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(frames(CLIENT_REQUESTS, MASTER_FIELDS), min_size=1, max_size=4))
    def every_frame_gets_its_answer(sent: list[object]) -> None:
        for frame in sent:
            request = _decoded(CLIENT_REQUESTS, frame)
            if isinstance(request, InvalidMessage):
                reply = line.ask(frame, ERROR_ONLY)
                assert reply.code == E_INVALID, reply
                continue
            if isinstance(request, ProtocolError):  # not msgpack: the peer is not one of us
                line.send(frame)
                assert line.hung_up()
                line.close()
                continue
            if not type(request).replies:  # cache-release: nothing to answer
                line.send(frame)
                continue
            line.ask(frame, replies_to(type(request)))
            if isinstance(request, Logout):
                assert line.hung_up()
                line.close()

    def run() -> None:
        try:
            every_frame_gets_its_answer()
        finally:
            line.close()

    return run


def unidentified_peer_property(cluster: LocalCluster, examples: int) -> Callable[[], None]:
    # Every greeting, register and join included: without a member's certificate (or
    # a join token) they are refused like a wrong password, and the connection ends.
    sent = st.one_of(
        messages(GREETINGS, {"user": st.sampled_from([USER, "nobody", ""])}),
        ill_typed(GREETINGS),
        corrupted(GREETINGS),
        messages(CLIENT_REQUESTS, MASTER_FIELDS),
    )

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(sent)
    def anything_but_a_good_greeting_ends_the_connection(frame: object) -> None:
        line = MasterLine(cluster, login=False)
        try:
            greeting = _decoded(GREETINGS, frame)
            if isinstance(greeting, InvalidMessage):
                assert line.ask(frame, ERROR_ONLY) == refusal(greeting)
                assert line.hung_up()
                return
            if isinstance(greeting, ProtocolError):
                line.send(frame)
                assert line.hung_up()
                return
            reply = line.ask(frame, replies_to(type(greeting)))
            if isinstance(greeting, (Register, Join)):  # no certificate, no token
                assert isinstance(reply, Error) and reply.code in (E_SECURITY, E_SUPPORT)
            if isinstance(reply, Error):
                assert line.hung_up()
        finally:
            line.close()

    return anything_but_a_good_greeting_ends_the_connection


def member_link_property(
    cluster: LocalCluster, credential: tuple[Path, Path], examples: int
) -> Callable[[], None]:
    """A registered slave (a real member's certificate) reporting anything at all: the
    heartbeats and reports of a confused or hostile member get E_INVALID, nothing more."""
    line = MasterLine(cluster, member=(MEMBER, credential))
    reports = {"free": st.integers(0, 10**6), "total": st.integers(0, 10**6)}

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(frames(SLAVE_REPORTS, reports), min_size=1, max_size=4))
    def every_report_gets_its_answer(sent: list[object]) -> None:
        for frame in sent:
            report = _decoded(SLAVE_REPORTS, frame)
            if isinstance(report, InvalidMessage):
                reply = line.ask(frame, ERROR_ONLY)
                assert reply.code == E_INVALID, reply
                continue
            if isinstance(report, ProtocolError):  # not msgpack: not one of us after all
                line.send(frame)
                assert line.hung_up()
                line.close()
                continue
            line.ask(frame, replies_to(type(report)))

    def run() -> None:
        try:
            every_report_gets_its_answer()
        finally:
            line.close()

    return run


def registration_property(
    cluster: LocalCluster, credential: tuple[Path, Path], examples: int
) -> Callable[[], None]:
    """A member's registrations, well-typed (everything it claims to hold) or broken."""
    fields = {"slave_id": st.sampled_from([MEMBER, "someone-else"]), "port": st.just(1)}

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames([Register], fields))
    def a_registration_is_taken_whole_or_refused(frame: object) -> None:
        with master_socket(cluster, credential, timeout=30) as sock:
            greeting = _decoded(GREETINGS, frame)
            sock.sendall(_framed(frame))
            if isinstance(greeting, ProtocolError) and not isinstance(greeting, InvalidMessage):
                assert closed_by_peer(sock)
                return
            if isinstance(greeting, InvalidMessage):
                assert ERROR_ONLY.decode(recv_body(sock)) == refusal(greeting)
                assert closed_by_peer(sock)
                return
            reply = replies_to(type(greeting)).decode(recv_body(sock))
            if isinstance(greeting, Register) and greeting.slave_id != MEMBER:
                assert isinstance(reply, Error) and reply.code == E_SECURITY
            if isinstance(reply, Error):
                assert closed_by_peer(sock)

    return a_registration_is_taken_whole_or_refused


# --- the slave -----------------------------------------------------------------------


TARGET = "/slave-fuzz/target"


@dataclass
class Tokens:
    """Real tokens for the fuzzed file, so that some frames get past the signature check."""

    read: bytes
    write: bytes
    address: tuple[str, int]


def _slave_fields(tokens: Tokens) -> dict[str, st.SearchStrategy[Any]]:
    small = st.integers(0, 4096)  # a put's length is sent for real; offsets stay sane
    return {
        "token": st.one_of(st.binary(max_size=48), st.sampled_from([tokens.read, tokens.write])),
        "offset": st.one_of(small, st.integers(0, 2**20)),
        "length": small,
    }


def data_connection_property(tokens: Tokens, examples: int) -> Callable[[], None]:
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(frames(SLAVE_REQUESTS, _slave_fields(tokens)), min_size=1, max_size=6))
    def the_slave_answers_as_the_contract_says(sent: list[object]) -> None:
        with socket.create_connection(tokens.address, timeout=30) as sock:
            streaming = False  # inside a write session: no replies, errors wait for commit
            for frame in sent:
                request = _decoded(SLAVE_REQUESTS, frame)
                sock.sendall(_framed(frame))
                if isinstance(request, ProtocolError):
                    if _ends_the_connection(request):
                        assert closed_by_peer(sock)
                        return
                    if not streaming:
                        reply = ERROR_ONLY.decode(recv_body(sock))
                        assert reply.code == E_INVALID
                    continue
                if isinstance(request, Put):
                    sock.sendall(b"x" * request.length)
                streaming = _streaming_after(request, streaming)
                if request.replies:
                    reply = replies_to(type(request)).decode(recv_body(sock))
                    if isinstance(reply, ReadReply) and reply.length:
                        recv_exact_into(sock, memoryview(bytearray(reply.length)))

    return the_slave_answers_as_the_contract_says


def _ends_the_connection(refused: ProtocolError) -> bool:
    """Not msgpack at all (not one of us), or a frame that may announce raw bytes (no
    way to tell where its data ends): either way, the slave hangs up."""
    return not isinstance(refused, InvalidMessage) or refused.announces_raw_bytes


def _streaming_after(request: Request, streaming: bool) -> bool:
    if isinstance(request, (Write, Put, Truncate)):
        return True  # a put or truncate outside a write session is an error kept for the commit
    if isinstance(request, (Commit, AbortWrite)):
        return False
    return streaming


def _tokens(client: Client) -> Tokens:
    """Tokens granted to ``client`` for a file of its own; the write lease lasts as
    long as its session."""
    with client.open(TARGET, WRITE | TRUNC) as handle:
        handle.write(b"0123456789" * 100)
    read = client.call(Open(TARGET, READ))
    write = client.call(Open(TARGET, WRITE))
    return Tokens(read.token, write.token, tuple(read.replicas[0]))


def _still_serving(cluster: LocalCluster) -> None:
    survivor = connect(cluster)
    with survivor.open("/robustness/after", WRITE) as handle:
        handle.write(b"still here")
    with survivor.open("/robustness/after", READ) as handle:
        assert handle.read() == b"still here"
    with admin(cluster) as root:  # the cluster's own slaves (not the fuzzing's member)
        own = [s for s in root.sysinfo()["slaves"] if s["id"] != MEMBER]
    assert len(own) == cluster.slaves and all(s["status"] == "alive" for s in own)
    survivor.rm("/robustness")
    survivor.close()


# --- the properties, quick and thorough ------------------------------------------------


def _fuzz_master(cluster: LocalCluster, examples: int, tmp_path: Path) -> None:
    client_session_property(cluster, examples)()
    unidentified_peer_property(cluster, max(10, examples // 6))()
    member = issue_member(cluster, tmp_path, MEMBER)
    member_link_property(cluster, member, max(10, examples // 2))()
    registration_property(cluster, member, max(10, examples // 4))()
    _still_serving(cluster)


def _fuzz_slave(cluster: LocalCluster, examples: int) -> None:
    with connect(cluster) as client:
        data_connection_property(_tokens(client), examples)()
    _still_serving(cluster)


def test_fuzzed_frames_to_the_master_harm_no_one(fuzzed: LocalCluster, tmp_path: Path) -> None:
    _fuzz_master(fuzzed, QUICK, tmp_path)


def test_fuzzed_frames_to_a_slave_harm_no_one(fuzzed: LocalCluster) -> None:
    _fuzz_slave(fuzzed, QUICK)


@pytest.mark.slow
def test_many_fuzzed_frames_to_the_master(fuzzed: LocalCluster, tmp_path: Path) -> None:
    _fuzz_master(fuzzed, THOROUGH, tmp_path)


@pytest.mark.slow
def test_many_fuzzed_frames_to_a_slave(fuzzed: LocalCluster) -> None:
    _fuzz_slave(fuzzed, THOROUGH)


def test_the_refusals_name_the_rule(fuzzed: LocalCluster) -> None:
    """Spot checks of what the properties above allow: the exact replies people read."""
    line = MasterLine(fuzzed)
    try:
        reply = line.ask(["stat", 12], ERROR_ONLY)
        assert reply == Error(
            E_INVALID, "bad 'stat' message: Expected `str`, got `int` - at `path`"
        )
        assert line.ask(["bogus"], ERROR_ONLY).msg.startswith("'bogus' is not one of")
    finally:
        line.close()
    anonymous = MasterLine(fuzzed, login=False)
    try:
        assert anonymous.ask(["stat", "/"], ERROR_ONLY).code == E_SECURITY
    finally:
        anonymous.close()
