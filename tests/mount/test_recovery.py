"""A mount whose master goes away, and mounts that may do less: a user with fewer
rights (down to none at the top) or a quota, a read-only mount.

Each test has a private mount, and a private cluster when it stops or
reconfigures the master.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import time

import pytest

from tests.support import wait_until

pytestmark = pytest.mark.timeout(120)

#: What "bounded" means for an answer while the master is gone (a refused
#: connection is immediate; this leaves room for a loaded CI machine).
ANSWER_WITHIN = 10.0


def timed_errno(call, *args) -> tuple[int, float]:
    started = time.monotonic()
    with pytest.raises(OSError) as raised:
        call(*args)
    return raised.value.errno, time.monotonic() - started


def test_master_gone_means_eio_in_bounded_time_then_the_mount_recovers(
    make_cluster, make_mount
) -> None:
    cluster = make_cluster(slaves=1)
    mount = make_mount(cluster)
    (mount.path / "before").mkdir()
    (mount.path / "before" / "kept.txt").write_bytes(b"kept")

    master = cluster.process("master").popen
    master.kill()
    master.wait()
    for call, args in (
        (os.stat, (mount.path / "before" / "never-seen",)),
        (os.listdir, (mount.path / "before",)),
        (os.mkdir, (mount.path / "new-dir",)),
        (open, (mount.path / "new-file", "wb")),
    ):
        number, took = timed_errno(call, *args)
        assert number == errno.EIO, (call, errno.errorcode.get(number))
        assert took < ANSWER_WITHIN, (call, took)

    cluster.restart_master()
    # no remount: the mount's session logs in again by itself (and the file is
    # readable again once its slave has re-registered with the new master)
    wait_until(lambda: _reads(mount.path / "before" / "kept.txt"), 30, "the mount to recover")
    (mount.path / "after.txt").write_bytes(b"written after the restart")
    with cluster.connect() as client, client.open("/after.txt") as remote:
        assert remote.read() == b"written after the restart"


def _reads(path) -> bool:
    try:
        return path.read_bytes() == b"kept"
    except OSError:
        return False


def test_a_user_without_write_rights_gets_eacces_and_sees_it_in_the_modes(
    make_cluster, make_mount
) -> None:
    cluster = make_cluster(slaves=1)
    with cluster.connect() as client:
        client.mkdir("/public")
        client.mkdir("/reader-only")
        with client.open("/public/readme", 2) as remote:  # WRITE
            remote.write(b"read me")
        with client.open("/reader-only/mine", "wb") as remote:
            remote.write(b"mine")
    (cluster.layout.conf / "users" / "reader").write_text(
        "PASSWORD\n\treader-password\nREAD_PERMISSION\n\t/\nWRITE_PERMISSION\n\t/reader-only\n"
    )
    cluster.restart_master(kill=False)  # users are read when the master starts
    mount = make_mount(cluster, SECTOR_USER="reader", SECTOR_PASSWORD="reader-password")
    assert (mount.path / "public" / "readme").read_bytes() == b"read me"
    modes = {
        name: stat.S_IMODE(os.stat(mount.path / name).st_mode)
        for name in ("public", "public/readme", "reader-only", "reader-only/mine")
    }
    assert modes == {
        "public": 0o555,
        "public/readme": 0o444,
        "reader-only": 0o755,
        "reader-only/mine": 0o644,
    }
    listed = {e.name: stat.S_IMODE(e.stat().st_mode) for e in os.scandir(mount.path / "public")}
    assert listed == {"readme": 0o444}  # (from the listing, as ls -l shows it)
    for call, args in (
        (os.mkdir, (mount.path / "public" / "sub",)),
        (open, (mount.path / "public" / "new", "wb")),
        (os.unlink, (mount.path / "public" / "readme",)),
        (os.rename, (mount.path / "public" / "readme", mount.path / "public" / "moved")),
        (os.open, (mount.path / "public" / "readme", os.O_WRONLY)),  # refused at open
        (os.truncate, (mount.path / "public" / "readme", 0)),
    ):
        number, _ = timed_errno(call, *args)
        assert number == errno.EACCES, (call, errno.errorcode.get(number))
    assert (mount.path / "public" / "readme").read_bytes() == b"read me"
    # access(2) says the same as the modes (shells' test -w, rm's prompt)
    assert os.access(mount.path / "public" / "readme", os.R_OK)
    assert not os.access(mount.path / "public" / "readme", os.W_OK)
    assert not os.access(mount.path / "public", os.W_OK)
    assert os.access(mount.path / "public", os.R_OK | os.X_OK)
    assert os.access(mount.path / "reader-only" / "mine", os.R_OK | os.W_OK)
    assert not os.access(mount.path / "reader-only" / "mine", os.X_OK)


def test_a_user_whose_rights_start_below_the_top_can_reach_them_and_nothing_else(
    make_cluster, make_mount
) -> None:
    cluster = make_cluster(slaves=1)
    with cluster.connect() as client:
        for directory in ("/shared/alice", "/shared/bob", "/projects/alice"):
            client.mkdir(directory)  # (parents made as needed)
        for path in ("/shared/alice/notes", "/shared/bob/secret", "/top"):
            with client.open(path, "wb") as remote:
                remote.write(path.encode())
    (cluster.layout.conf / "users" / "alice").write_text(
        "PASSWORD\n\talice-password\nREAD_PERMISSION\n\t/shared/alice\n"
        "WRITE_PERMISSION\n\t/projects/alice\n"
    )
    cluster.restart_master(kill=False)  # users are read when the master starts
    mount = make_mount(cluster, SECTOR_USER="alice", SECTOR_PASSWORD="alice-password")
    root = mount.path
    assert sorted(os.listdir(root)) == ["projects", "shared"]  # only the way to its roots
    assert os.listdir(root / "shared") == ["alice"]
    assert stat.S_IMODE(os.stat(root / "shared").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(root / "shared" / "alice").st_mode) == 0o555
    assert (root / "shared" / "alice" / "notes").read_bytes() == b"/shared/alice/notes"
    (root / "projects" / "alice" / "mine").write_bytes(b"mine")
    for call, args in (
        (open, (root / "shared" / "bob" / "secret", "rb")),
        (open, (root / "top", "rb")),
        (os.mkdir, (root / "elsewhere",)),
    ):
        number, _ = timed_errno(call, *args)
        assert number == errno.EACCES, (call, errno.errorcode.get(number))
    with cluster.connect() as client, client.open("/projects/alice/mine") as remote:
        assert remote.read() == b"mine"


def test_a_master_that_hangs_gives_eio_within_master_timeout_then_the_mount_recovers(
    make_cluster, make_mount
) -> None:
    """A master that stops answering without closing (SIGSTOP, as behind a network cut)."""
    cluster = make_cluster(slaves=1)
    with open(cluster.layout.conf / "client.conf", "a") as conf:
        conf.write("\nMASTER_TIMEOUT\n\t2\n")
    mount = make_mount(cluster)
    (mount.path / "kept.txt").write_bytes(b"kept")
    master = cluster.process("master").popen.pid
    os.kill(master, signal.SIGSTOP)
    try:
        for call, args in (
            (os.stat, (mount.path / "never-seen",)),
            (os.mkdir, (mount.path / "new-dir",)),
        ):
            number, took = timed_errno(call, *args)
            assert number == errno.EIO, (call, errno.errorcode.get(number))
            assert took < ANSWER_WITHIN, (call, took)
    finally:
        os.kill(master, signal.SIGCONT)
    wait_until(lambda: _reads(mount.path / "kept.txt"), 30, "the mount to recover")
    (mount.path / "new-dir").mkdir()


def test_a_write_past_the_quota_is_enospc_and_the_previous_version_stays(
    make_cluster, make_mount
) -> None:
    """E_NODISK (a full cluster, or the user's QUOTA: the same refusal) reaches the program."""
    cluster = make_cluster(slaves=1)
    with cluster.connect() as client:
        client.mkdir("/small")
    settings = {"PASSWORD": "small-password", "READ_PERMISSION": "/", "WRITE_PERMISSION": "/small"}
    settings["QUOTA"] = "1"  # MB
    (cluster.layout.conf / "users" / "small").write_text(
        "".join(f"{key}\n\t{value}\n" for key, value in settings.items())
    )
    cluster.restart_master(kill=False)  # users are read when the master starts
    with cluster.connect() as client:  # the slave registers again on its own time
        wait_until(lambda: client.sysinfo()["capacity"]["total"], 30, "the slave to register")
    mount = make_mount(cluster, SECTOR_USER="small", SECTOR_PASSWORD="small-password")
    kept = mount.path / "small" / "kept"
    kept.write_bytes(b"the version that fits")
    # at a write, or at the latest at close
    with pytest.raises(OSError) as raised, open(kept, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024))
    assert raised.value.errno == errno.ENOSPC, errno.errorcode.get(raised.value.errno)
    assert kept.read_bytes() == b"the version that fits"
    with cluster.connect() as client, client.open("/small/kept") as remote:
        assert remote.read() == b"the version that fits"


def test_a_read_only_mount_reads_and_refuses_every_change_with_erofs(
    cluster, make_mount, client, workdir
) -> None:
    with client.open(f"{workdir}/readme", "wb") as remote:
        remote.write(b"read me")
    mount = make_mount(cluster, "-o", "ro")
    here = mount.local(workdir)
    assert (here / "readme").read_bytes() == b"read me"
    for call, args in (
        (open, (here / "readme", "r+b")),
        (open, (here / "new", "wb")),
        (os.mkdir, (here / "sub",)),
        (os.unlink, (here / "readme",)),
        (os.rename, (here / "readme", here / "moved")),
    ):
        number, _ = timed_errno(call, *args)
        assert number == errno.EROFS, (call, errno.errorcode.get(number))
    assert sorted(os.listdir(here)) == ["readme"]
