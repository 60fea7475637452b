"""Who may do what, where: every user × operation × path, with the exact code.

The rules (``master/users.py``, ``master/tree.py``): reading needs a read or a
write root above the path; writing a write root above it; the administrator
may do anything the namespace allows. A user may not remove or move one of its
own write roots (issue 9: a user could ``rm`` its write root, and every other
user's files in it). Refusals are ``E_PERMISSION``; what the namespace refuses
(a directory read as a file...) keeps its own code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sector.client import Client
from sector.cluster import LocalCluster
from sector.errors import E_INVALID, E_PERMISSION, SectorError
from sector.master.users import hash_password
from sector.protocol.messages import READ, WRITE
from sector.protocol.paths import is_within
from sector.provision import UserFile, write_file
from tests.support import admin

OK = 0
#: name -> (read roots, write roots), under the test's own directory
USERS = {
    "pm-alice": (["/shared"], ["/home/alice"]),
    "pm-bob": ([], ["/shared"]),
    "pm-eve": ([], []),
}
#: path -> is it a directory
PATHS = {
    "/home/alice": True,
    "/home/alice/file": False,
    "/shared": True,
    "/shared/doc": False,
    "/secret/file": False,
}
OPERATIONS = ["stat", "ls", "read", "write", "mkdir", "rm", "move", "copy"]


def within(path: str, roots: list[str]) -> bool:
    return any(is_within(path, root) for root in roots)


def expected(user: str, operation: str, path: str) -> int:
    """The code the rules give; OK for success."""
    if user == "root":
        reads = writes = ["/"]
        roots: list[str] = []
    else:
        read_roots, writes = USERS[user]
        reads, roots = read_roots + writes, writes
    is_dir = PATHS[path]
    may_read, may_write = within(path, reads), within(path, writes)
    if operation in ("stat", "ls"):
        return OK if may_read else E_PERMISSION
    if operation == "read":
        return E_PERMISSION if not may_read else E_INVALID if is_dir else OK
    if operation == "write":
        return E_PERMISSION if not may_write else E_INVALID if is_dir else OK
    if operation == "mkdir":  # a new directory inside the path
        return E_PERMISSION if not may_write else OK if is_dir else E_INVALID
    own_root = any(within(root, [path]) for root in roots)
    if operation == "rm":
        return OK if may_write and not own_root else E_PERMISSION
    if operation == "move":  # to a new name beside it
        may_move = may_write and within(path + "-moved", writes) and not own_root
        return OK if may_move else E_PERMISSION
    if operation == "copy":  # to a new name beside it
        if not may_read or not within(path + "-copy", writes):
            return E_PERMISSION
        return E_INVALID if is_dir else OK
    raise AssertionError(operation)


def attempt(client: Client, operation: str, path: str) -> int:
    """Do ``operation`` on ``path``; OK or the Sector code it failed with."""
    actions: dict[str, Callable[[], object]] = {
        "stat": lambda: client.stat(path),
        "ls": lambda: client.ls(path),
        "read": lambda: client.open(path, READ).close(),
        "write": lambda: _write(client, path, b"rewritten"),
        "mkdir": lambda: client.mkdir(path + "/new"),
        "rm": lambda: client.rm(path),
        "move": lambda: client.move(path, path + "-moved"),
        "copy": lambda: client.copy(path, path + "-copy"),
    }
    try:
        actions[operation]()
    except SectorError as exc:
        return exc.code
    return OK


def _write(client: Client, path: str, data: bytes) -> None:
    with client.open(path, WRITE) as handle:
        handle.write(data)


@pytest.fixture
def matrix(cluster: LocalCluster, workdir: str) -> Iterator[tuple[str, dict[str, Client]]]:
    """The users (their roots under ``workdir``), logged in, and root's client."""
    users_dir = cluster.layout.conf / "users"
    for name, (reads, writes) in USERS.items():
        account = UserFile(
            name,
            hash_password("pw"),
            read=[workdir + p for p in reads],
            write=[workdir + p for p in writes],
        )
        write_file(users_dir / name, account.text(), secret=True)
    clients = {"root": admin(cluster)}
    for name in USERS:
        clients[name] = Client(*cluster.master_address)  # type: ignore[misc]
        clients[name].login(name, "pw", cluster.layout.cert)
    yield workdir, clients
    for name, client in clients.items():
        client.close()
        if name in USERS:
            (users_dir / name).unlink()


def _restore(root: Client, base: str) -> None:
    """The tree as every case expects it: the paths, and nothing the last case made."""
    for path, is_dir in PATHS.items():
        for leftover in (path + "-moved", path + "-copy", path + "/new"):
            if root.exists(base + leftover):
                root.rm(base + leftover)
        if not root.exists(base + path):
            if is_dir:
                root.mkdir(base + path)
            else:
                _write(root, base + path, b"original")


def test_every_user_operation_and_path_gets_exactly_its_code(
    matrix: tuple[str, dict[str, Client]],
) -> None:
    base, clients = matrix
    found, wanted = {}, {}
    for user, client in clients.items():
        for path in PATHS:
            for operation in OPERATIONS:
                _restore(clients["root"], base)
                case = (user, operation, path)
                found[case] = attempt(client, operation, base + path)
                wanted[case] = expected(user, operation, path)
    wrong = {case: (found[case], wanted[case]) for case in found if found[case] != wanted[case]}
    assert not wrong, f"{len(wrong)} of {len(found)} cases: (got, wanted) {wrong}"
    assert len(found) == 4 * len(PATHS) * len(OPERATIONS)
    # and the case, by name: alice may not remove her own write root
    assert found[("pm-alice", "rm", "/home/alice")] == E_PERMISSION
    assert found[("pm-bob", "rm", "/shared")] == E_PERMISSION
    assert found[("root", "rm", "/shared")] == OK
