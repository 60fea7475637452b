"""Replication with real processes: every file kept at its target through faults.

Each test runs its own cluster (``make_cluster``) and injects faults the way
an operator meets them: ``kill -9`` of a slave, a slave stopped while the
namespace changes. Every wait is a condition with a deadline.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from pathlib import Path

import sector
from sector.client import Client
from sector.cluster import LocalCluster
from sector.protocol.messages import HIRELIABLE, READ, TRUNC, WRITE
from tests.support import PASSWORD, USER, admin, connect, wait_until

#: Seconds the cluster gets to bring every file back to its target after a fault.
REPAIR_DEADLINE = 60.0


def write(client: Client, path: str, data: bytes) -> None:
    with client.open(path, WRITE | TRUNC) as remote:
        remote.write(data)


def read(client: Client, path: str) -> bytes:
    with client.open(path, READ) as remote:
        return remote.read()


def health(client: Client) -> dict:
    return client.sysinfo()["master"]["health"]


def settled(client: Client) -> bool:
    """Every file at its target, nothing being copied or waiting."""
    figures = health(client)
    return (
        figures["scanned"]
        and figures["under_replicated"] == 0
        and figures["lost"] == 0
        and figures["copying"] == 0
        and figures["queued"] == 0
    )


def live_replicas(client: Client, path: str) -> int:
    return len(client.stat(path).slaves)


def slave_number(cluster: LocalCluster, address: str) -> int:
    """Which slave (1, 2, ...) serves ``host:port``."""
    for number in range(1, cluster.slaves + 1):
        ready = cluster.layout.slave_dir(number) / "slave.addr"
        if ready.exists():
            host, port = ready.read_text().split()[:2]
            if f"{host}:{port}" == address:
                return number
    raise LookupError(address)


def test_a_slave_killed_loses_nothing_and_every_file_gets_two_replicas_again(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(slaves=3, replicas=2)
    client = connect(cluster)
    rng = random.Random(8)
    files = {f"/data/{n:03d}": os.urandom(rng.randint(1, 200_000)) for n in range(100)}
    for path, data in files.items():
        write(client, path, data)
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="every file at 2 replicas")
    assert all(live_replicas(client, path) == 2 for path in files)

    cluster.stop_process("slave2", kill=True)

    # every byte is readable at once, through the PySector module and through Client
    assert cluster.master_address is not None
    assert sector.init(*cluster.master_address) == 0
    assert sector.login(USER, PASSWORD, str(cluster.layout.cert)) == 0
    try:
        for path, data in files.items():
            handle = sector.open(path, READ)
            assert isinstance(handle, int) and handle >= 0, handle
            assert sector.read(handle, len(data) + 10) == data
            assert sector.close(handle) == 0
    finally:
        sector.logout()
        sector.closeclient()
    for path, data in files.items():
        assert read(client, path) == data

    # ... and within a bounded time every file has two live replicas again
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="re-replication")
    assert all(live_replicas(client, path) == 2 for path in files)
    slaves = [s["status"] for s in client.sysinfo()["slaves"]]
    assert sorted(slaves) == ["alive", "alive", "dead"]
    client.close()


def test_one_writer_spreads_its_files_over_every_slave(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(slaves=3, replicas=1)
    client = connect(cluster)
    rng = random.Random(3)
    written: dict[int, int] = {}
    for n in range(100):
        size = rng.randint(10_000, 100_000)
        write(client, f"/spread/{n}", os.urandom(size))
        holder = slave_number(cluster, client.stat(f"/spread/{n}").slaves[0])
        written[holder] = written.get(holder, 0) + size
    third = sum(written.values()) / 3
    assert sorted(written) == [1, 2, 3]
    for number, total in written.items():
        assert abs(total - third) <= 0.2 * third, (number, total, third)
    client.close()


TOPOLOGY = "127.0.0.2/31 /dc1/rack1\n127.0.0.4/31 /dc1/rack2\n"
RACK = {"127.0.0.2": "rack1", "127.0.0.3": "rack1", "127.0.0.4": "rack2", "127.0.0.5": "rack2"}
RULES = """\
REPLICATION_DISTANCE
\t/near\t1
REPLICATION_LOCATION
\t/pinned\t/dc1/rack2
"""


def test_replicas_land_in_different_racks_unless_a_rule_says_otherwise(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(
        slaves=4,
        replicas=2,
        conf_files={"topology.conf": TOPOLOGY, "replica.conf": RULES},
        slave_hosts=list(RACK),
    )
    client = connect(cluster)
    for folder in ("/spread", "/near", "/pinned"):
        for n in range(8):
            write(client, f"{folder}/{n}", os.urandom(5_000 + n))
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="every file at 2 replicas")
    with admin(cluster) as root:  # where slaves are is for administrators
        slaves = root.sysinfo()["slaves"]
    locations = {s["address"].split(":")[0]: s["location"] for s in slaves}
    assert locations == {host: f"/dc1/{rack}" for host, rack in RACK.items()}

    def racks(path: str) -> list[str]:
        hosts = [address.split(":")[0] for address in client.stat(path).slaves]
        assert len(set(hosts)) == 2, (path, hosts)
        return sorted(RACK[host] for host in hosts)

    for n in range(8):
        assert racks(f"/spread/{n}") == ["rack1", "rack2"]  # as far apart as can be
        near = racks(f"/near/{n}")
        assert near[0] == near[1]  # REPLICATION_DISTANCE 1: within one rack
        assert racks(f"/pinned/{n}") == ["rack2", "rack2"]  # REPLICATION_LOCATION
    client.close()


def test_a_slave_stopped_while_files_change_comes_back_without_zombies_or_duplicates(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(slaves=3, replicas=2)
    client = connect(cluster)
    for name in ("kept", "removed", "renamed", "rewritten"):
        write(client, f"/d/{name}", name.encode() * 1000)
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="every file at 2 replicas")

    cluster.stop_process("slave1", kill=True)
    client.rm("/d/removed")
    client.move("/d/renamed", "/d/moved")
    write(client, "/d/rewritten", b"second version")
    cluster.start_slave(1)
    wait_until(
        lambda: sum(s["status"] == "alive" for s in client.sysinfo()["slaves"]) == 3,
        what="slave1 back",
    )
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="every file at 2 replicas")

    assert sorted(e.name for e in client.ls("/d")) == ["kept", "moved", "rewritten"]
    assert read(client, "/d/kept") == b"kept" * 1000
    assert read(client, "/d/moved") == b"renamed" * 1000
    assert read(client, "/d/rewritten") == b"second version"
    for name in ("kept", "moved", "rewritten"):
        assert live_replicas(client, f"/d/{name}") == 2  # no surplus left behind

    def objects() -> list[str]:
        return sorted(
            p.name.rsplit(".", 1)[0]
            for n in (1, 2, 3)
            for p in (cluster.layout.slave_dir(n) / "objects").rglob("*.*.*")
        )

    # no zombie (the removed file, the old version) and no third copy of anything
    expected = sorted(
        f"{oid}.{version}"
        for name in ("kept", "moved", "rewritten")
        for oid, version in [_object_of(client, f"/d/{name}")]
        for _ in range(2)
    )
    wait_until(lambda: objects() == expected, what="stale and surplus objects to go")
    client.close()


def _object_of(client: Client, path: str) -> tuple[int, int]:
    with client.open(path, READ) as remote:
        grant = remote.grant
        return grant.oid, grant.version


def test_the_target_is_kept_as_high_as_the_live_slaves_allow(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(slaves=2, replicas=3)
    client = connect(cluster)
    write(client, "/few", b"x" * 10_000)
    wait_until(lambda: live_replicas(client, "/few") == 2, what="a copy on the other slave")
    wait_until(lambda: health(client)["copying"] == 0, what="no copy in flight")
    figures = health(client)
    assert (figures["under_replicated"], figures["lost"]) == (1, 0)
    assert read(client, "/few") == b"x" * 10_000
    cluster.start_slave(3)
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="the third replica")
    assert live_replicas(client, "/few") == 3
    client.close()


def test_a_hireliable_close_returns_with_every_replica_written(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(slaves=3, replicas=2)
    client = connect(cluster)
    data = os.urandom(3_000_000)
    with client.open("/sure", WRITE | HIRELIABLE) as remote:
        remote.write(data)
        first = "{}:{}".format(*remote.grant.slave)
    holders = client.stat("/sure").slaves
    assert len(holders) == 2 and first in holders  # at close, not after

    cluster.stop_process(f"slave{slave_number(cluster, first)}", kill=True)
    assert read(client, "/sure") == data  # from the replica the chain wrote

    # a path can ask for it too: plain writes there return with both replicas made
    client.mkdir("/sure-dir")
    assert client.set_replication("/sure-dir", 2, hireliable=True) == 0
    with client.open("/sure-dir/f", WRITE) as remote:
        remote.write(data)
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="the repairs")
    with client.open("/sure-dir/g", WRITE) as remote:
        remote.write(b"g" * 1000)
    assert live_replicas(client, "/sure-dir/g") == 2
    client.close()


def test_sector_replicate_raises_and_lowers_a_paths_count(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(slaves=4, replicas=2)
    client = connect(cluster)
    for n in range(5):
        write(client, f"/important/{n}", os.urandom(20_000))
    write(client, "/other", b"o" * 1000)
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="2 replicas each")
    assert client.set_replication("/important", 3) == 5
    wait_until(
        lambda: [live_replicas(client, f"/important/{n}") for n in range(5)] == [3] * 5,
        timeout=REPAIR_DEADLINE,
        what="3 replicas each",
    )
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="nothing more to copy")
    assert live_replicas(client, "/other") == 2

    client.move("/important", "/precious")  # the setting follows the directory
    cluster.restart_master(kill=True)  # ... and survives the master
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="the restart")
    assert [live_replicas(client, f"/precious/{n}") for n in range(5)] == [3] * 5

    assert client.set_replication("/precious/0", 1) == 1
    wait_until(lambda: live_replicas(client, "/precious/0") == 1, what="the surplus trimmed")
    assert read(client, "/precious/0") is not None
    client.close()


def test_a_decommissioned_slave_is_drained_while_readers_carry_on(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(slaves=3, replicas=2)
    client = connect(cluster)
    files = {f"/drain/{n}": os.urandom(100_000) for n in range(40)}
    for path, data in files.items():
        write(client, path, data)
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="2 replicas each")
    root = admin(cluster)
    leaving = next(s for s in root.sysinfo()["slaves"] if s["files"])

    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        session = connect(cluster)
        try:
            while not stop.is_set():
                for path, data in files.items():
                    assert read(session, path) == data
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        result = root.decommission(leaving["address"])
        assert result["slave"] == leaving["id"] and result["files"] > 0
        status = {s["id"]: s["status"] for s in root.sysinfo()["slaves"]}
        assert status[leaving["id"]] in ("draining", "drained")
        wait_until(
            lambda: _status(root, leaving["id"]) == "drained",
            timeout=REPAIR_DEADLINE,
            what="the slave drained",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert settled(client)
    # every file now has two replicas that count, none of them on the drained slave
    address = leaving["address"]
    for path in files:
        assert len([a for a in client.stat(path).slaves if a != address]) >= 2
    cluster.stop_process(f"slave{slave_number(cluster, address)}", kill=True)
    for path, data in files.items():
        assert read(client, path) == data
    root.close()
    client.close()


def _status(client: Client, slave_id: str) -> str:
    return next(s["status"] for s in client.sysinfo()["slaves"] if s["id"] == slave_id)


def test_a_hireliable_write_whose_chain_slave_dies_still_closes_with_every_replica(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(slaves=3, replicas=2)
    client = connect(cluster)
    first, second = os.urandom(2_000_000), os.urandom(2_000_000)
    with client.open("/sure", WRITE | HIRELIABLE) as remote:
        remote.write(first)
        remote.flush()
        (link,) = remote.grant.chain
        cluster.stop_process(f"slave{slave_number(cluster, f'{link.host}:{link.port}')}", kill=True)
        remote.write(second)
    # the master made the replica the chain lost before the close returned
    holders = client.stat("/sure").slaves
    assert len(holders) == 2 and f"{link.host}:{link.port}" not in holders
    assert read(client, "/sure") == first + second
    client.close()


def test_a_master_killed_during_heavy_re_replication_converges_with_nothing_lost(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    """kill -9 of a slave starts dozens of copies; kill -9 of the master while they run.

    The new master knows nothing of the copies the old one ordered: it must judge each
    file again from what the slaves report, finish the repair, and - when the first
    slave comes back - trim the surplus so that every file ends with exactly its two
    current objects on disk, none lost, none duplicated.
    """
    cluster = make_cluster(slaves=3, replicas=2)
    client = connect(cluster)
    rng = random.Random(9)
    files = {f"/heavy/{n:02d}": rng.randbytes(rng.randint(500_000, 1_500_000)) for n in range(60)}
    for path, data in files.items():
        write(client, path, data)
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="every file at 2 replicas")
    current = {path: "{}.{}".format(*_object_of(client, path)) for path in files}

    cluster.stop_process("slave1", kill=True)
    under_way = wait_until(lambda: _copying(client), what="the repair to be under way")
    cluster.restart_master(kill=True)
    assert under_way["under_replicated"] >= 10, under_way  # killed with most of it to do

    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="the repair, finished")
    assert all(live_replicas(client, path) == 2 for path in files)
    for path, data in files.items():
        assert read(client, path) == data

    # the first slave returns: its replicas count again, the surplus is trimmed
    cluster.start_slave(1)
    wait_until(
        lambda: sum(s["status"] == "alive" for s in client.sysinfo()["slaves"]) == 3,
        what="slave1 back",
    )

    def objects() -> list[str]:
        return sorted(
            p.name.rsplit(".", 1)[0]
            for n in (1, 2, 3)
            for p in (cluster.layout.slave_dir(n) / "objects").rglob("*.*.*")
        )

    # a copy cut short by the master's death leaves no half object behind either
    expected = sorted([*current.values(), *current.values()])
    wait_until(lambda: objects() == expected, timeout=REPAIR_DEADLINE, what="two objects a file")
    wait_until(lambda: settled(client), timeout=REPAIR_DEADLINE, what="nothing left to do")
    for path, data in files.items():
        assert read(client, path) == data
    client.close()


def _copying(client: Client) -> dict | None:
    """The master's health figures while copies are in flight, else None."""
    figures = health(client)
    return figures if figures["copying"] else None
