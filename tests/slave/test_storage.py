"""A slave's objects on disk: hashed while written, published atomically, found again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sector.protocol import checksum
from sector.slave.storage import DamagedObject, Storage, WriteSession


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "data")


def object_files(storage: Storage) -> list[Path]:
    return sorted(p for p in storage.objects_dir.rglob("*") if p.is_file())


def write_object(storage: Storage, oid: int, version: int, data: bytes) -> tuple[int, str]:
    session = WriteSession.begin(storage, oid, version, lease=1, base=0)
    session.write_at(0, memoryview(data))
    return session.commit()


# --- writing ------------------------------------------------------------------------


def test_in_order_writes_are_hashed_in_one_pass_matching_of_file(storage: Storage) -> None:
    pieces = [os.urandom(1000), b"\x00" * 5000, os.urandom(3)]
    session = WriteSession.begin(storage, 7, 1, lease=1, base=0)
    offset = 0
    for piece in pieces:
        session.write_at(offset, memoryview(piece))
        offset += len(piece)
    assert session.in_order and session.hashed == offset
    size, digest = session.commit()
    stored = storage.find(7, 1)
    assert stored is not None
    assert size == offset
    assert digest == checksum.of_bytes(b"".join(pieces)) == checksum.of_file(stored.path)
    assert stored.checksum == digest
    assert stored.path.read_bytes() == b"".join(pieces)


def test_out_of_order_writes_still_give_the_right_checksum(storage: Storage) -> None:
    data = os.urandom(9000)
    session = WriteSession.begin(storage, 8, 1, lease=1, base=0)
    for start in (6000, 0, 3000):
        session.write_at(start, memoryview(data[start : start + 3000]))
    assert not session.in_order
    size, digest = session.commit()
    assert (size, digest) == (9000, checksum.of_bytes(data))


def test_overwriting_already_hashed_bytes_gives_the_checksum_of_the_final_content(
    storage: Storage,
) -> None:
    session = WriteSession.begin(storage, 9, 1, lease=1, base=0)
    session.write_at(0, memoryview(b"aaaaaaaaaa"))
    session.write_at(2, memoryview(b"BB"))
    assert session.commit() == (10, checksum.of_bytes(b"aaBBaaaaaa"))


@pytest.mark.parametrize(
    ("length", "kept_in_order"), [(6, True), (3, False), (12, True), (0, False)]
)
def test_a_truncate_cuts_or_zero_extends_and_the_checksum_follows(
    storage: Storage, length: int, kept_in_order: bool
) -> None:
    session = WriteSession.begin(storage, 15, 1, lease=1, base=0)
    session.write_at(0, memoryview(b"abcdef"))
    session.truncate(length)
    assert session.in_order == kept_in_order and session.size == length
    expected = (b"abcdef" + bytes(6))[:length]
    assert session.read_at(0, 100) == expected
    assert session.commit() == (length, checksum.of_bytes(expected))


def test_writes_after_a_truncate_land_in_place(storage: Storage) -> None:
    session = WriteSession.begin(storage, 16, 1, lease=1, base=0)
    session.write_at(0, memoryview(b"0123456789"))
    session.truncate(4)
    session.write_at(4, memoryview(b"XY"))
    assert session.commit() == (6, checksum.of_bytes(b"0123XY"))


def test_a_gap_reads_as_zeros(storage: Storage) -> None:
    session = WriteSession.begin(storage, 10, 1, lease=1, base=0)
    session.write_at(4, memoryview(b"tail"))
    assert session.commit() == (8, checksum.of_bytes(b"\x00\x00\x00\x00tail"))


def test_read_at_sees_the_writers_own_unpublished_bytes(storage: Storage) -> None:
    session = WriteSession.begin(storage, 11, 1, lease=1, base=0)
    session.write_at(0, memoryview(b"hello world"))
    assert session.read_at(6, 100) == b"world"
    assert session.read_at(20, 5) == b""
    session.discard()


def test_an_empty_object_can_be_committed(storage: Storage) -> None:
    session = WriteSession.begin(storage, 12, 1, lease=1, base=0)
    assert session.commit() == (0, checksum.of_bytes(b""))
    assert storage.find(12, 1) is not None


def test_a_new_version_can_start_from_a_base_version(storage: Storage) -> None:
    write_object(storage, 13, 1, b"0123456789")
    session = WriteSession.begin(storage, 13, 2, lease=2, base=1)
    session.write_at(10, memoryview(b"ABC"))
    assert session.commit() == (13, checksum.of_bytes(b"0123456789ABC"))
    assert storage.find(13, 1) is not None, "the base version stays until the master deletes it"


def test_a_missing_base_version_is_refused_and_leaves_nothing(storage: Storage) -> None:
    with pytest.raises(FileNotFoundError):
        WriteSession.begin(storage, 14, 2, lease=1, base=1)
    assert list(storage.tmp_dir.iterdir()) == []


# --- atomic publication --------------------------------------------------------------


def test_nothing_is_in_objects_before_commit_and_no_temp_is_left_after(
    storage: Storage,
) -> None:
    session = WriteSession.begin(storage, 20, 1, lease=1, base=0)
    session.write_at(0, memoryview(b"x" * 100))
    assert object_files(storage) == []
    assert storage.find(20, 1) is None
    assert [p.name for p in storage.tmp_dir.iterdir()] == [session.temp.name]
    session.commit()
    assert list(storage.tmp_dir.iterdir()) == []
    [published] = object_files(storage)
    assert published.name == f"20.1.{checksum.of_bytes(b'x' * 100)}"


def test_discard_leaves_nothing_behind(storage: Storage) -> None:
    session = WriteSession.begin(storage, 21, 1, lease=1, base=0)
    session.write_at(0, memoryview(b"abandoned"))
    session.discard()
    session.discard()  # idempotent: an abort after a failure must not raise
    assert list(storage.tmp_dir.iterdir()) == []
    assert object_files(storage) == []
    assert storage.find(21, 1) is None


def test_usage_counts_stored_bytes_and_files(storage: Storage) -> None:
    write_object(storage, 22, 1, b"a" * 10)
    write_object(storage, 23, 1, b"b" * 5)
    usage = storage.usage()
    assert (usage["stored"], usage["files"]) == (15, 2)
    assert usage["total"] >= usage["free"] > 0
    storage.delete(22, 1)
    assert (storage.usage()["stored"], storage.usage()["files"]) == (5, 1)


def test_delete_removes_the_file_and_reports_whether_it_was_there(storage: Storage) -> None:
    write_object(storage, 24, 1, b"data")
    assert storage.delete(24, 1) is True
    assert storage.delete(24, 1) is False
    assert object_files(storage) == []


# --- restart ------------------------------------------------------------------------


def test_a_restart_finds_the_objects_and_clears_tmp(tmp_path: Path) -> None:
    first = Storage(tmp_path / "data")
    size, digest = write_object(first, 30, 2, b"survives")
    write_object(first, 300, 1, b"other shard")
    leftover = WriteSession.begin(first, 31, 1, lease=1, base=0)
    leftover.write_at(0, memoryview(b"half written"))  # the slave "crashes" here
    (first.objects_dir / "README").write_text("not an object")

    again = Storage(tmp_path / "data")
    assert again.slave_id == first.slave_id
    assert list(again.tmp_dir.iterdir()) == []
    assert sorted(item[:4] for item in again.inventory()) == sorted(
        [[30, 2, size, digest], [300, 1, 11, checksum.of_bytes(b"other shard")]]
    )
    found = again.find(30, 2)
    assert found is not None and found.path.read_bytes() == b"survives"
    assert again.usage()["stored"] == size + 11
    leftover.discard()


def test_a_new_data_directory_gets_a_new_stable_slave_id(tmp_path: Path) -> None:
    a, b = Storage(tmp_path / "a"), Storage(tmp_path / "b")
    assert a.slave_id != b.slave_id
    assert (tmp_path / "a" / "slave.id").read_text().strip() == a.slave_id


# --- copy and verify ----------------------------------------------------------------


def test_copy_gives_an_identical_object_with_the_same_checksum(storage: Storage) -> None:
    data = os.urandom(50_000)
    _, digest = write_object(storage, 40, 1, data)
    assert storage.copy((40, 1), (41, 1)) == (50_000, digest)
    copied = storage.find(41, 1)
    assert copied is not None and copied.path.read_bytes() == data
    assert list(storage.tmp_dir.iterdir()) == []


def test_copy_of_a_missing_object_is_file_not_found(storage: Storage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.copy((404, 1), (405, 1))
    assert list(storage.tmp_dir.iterdir()) == []


def test_verify_detects_a_flipped_byte(storage: Storage) -> None:
    write_object(storage, 50, 1, b"\x00" * 10_000)
    assert storage.verify(50, 1) is True
    stored = storage.find(50, 1)
    assert stored is not None
    with open(stored.path, "r+b") as rotten:
        rotten.seek(4321)
        rotten.write(b"\x01")
    assert storage.verify(50, 1) is False


def test_verify_of_an_unknown_or_vanished_object_is_none(storage: Storage) -> None:
    assert storage.verify(60, 1) is None
    write_object(storage, 61, 1, b"gone")
    stored = storage.find(61, 1)
    assert stored is not None
    stored.path.unlink()
    assert storage.verify(61, 1) is None
    assert storage.inventory() == []


def test_republishing_a_version_replaces_it_and_counts_its_bytes_once(storage: Storage) -> None:
    """A re-copied replica (same oid and version) takes the old one's place."""
    write_object(storage, 70, 1, b"damaged!")
    _, digest = write_object(storage, 70, 1, b"good copy")
    [only] = object_files(storage)
    assert only.name == f"70.1.{digest}" and only.read_bytes() == b"good copy"
    assert (storage.usage()["stored"], storage.usage()["files"]) == (9, 1)


# --- block sums: stored beside each object, consistent across crashes --------------------

BIG = os.urandom(3 * checksum.BLOCK + 500)


def test_an_object_is_published_with_its_block_sums(storage: Storage) -> None:
    write_object(storage, 80, 1, BIG)
    stored = storage.find(80, 1)
    assert stored is not None
    assert stored.sums_path.read_bytes() == checksum.block_sums(BIG)
    assert checksum.of_sums(stored.sums_path.read_bytes()) == stored.checksum
    assert storage.sums_of(stored, 1, 2) == checksum.block_sums(BIG)[8:24]


def test_a_crash_after_the_sums_before_the_object_leaves_no_trace(tmp_path: Path) -> None:
    """The sums are renamed into place first; the object's rename is the commit point."""
    first = Storage(tmp_path / "data")
    write_object(first, 81, 1, BIG)
    stored = first.find(81, 1)
    assert stored is not None
    stored.path.unlink()  # as if the crash came between the two renames
    again = Storage(tmp_path / "data")
    assert again.find(81, 1) is None
    assert not stored.sums_path.exists()


def test_a_crash_that_loses_the_sums_rename_has_them_rebuilt_at_start(tmp_path: Path) -> None:
    """A power cut may keep the object's rename and lose the sums': the bytes prove
    themselves against the checksum in their name, and the sums are made again."""
    first = Storage(tmp_path / "data")
    write_object(first, 82, 1, BIG)
    stored = first.find(82, 1)
    assert stored is not None
    stored.sums_path.unlink()
    again = Storage(tmp_path / "data")
    found = again.find(82, 1)
    assert found is not None and found.sums_checked
    assert found.sums_path.read_bytes() == checksum.block_sums(BIG)


def test_an_object_without_sums_whose_bytes_rotted_is_quarantined_at_start(
    tmp_path: Path,
) -> None:
    first = Storage(tmp_path / "data")
    write_object(first, 83, 1, BIG)
    stored = first.find(83, 1)
    assert stored is not None
    stored.sums_path.unlink()
    with open(stored.path, "r+b") as rotten:
        rotten.write(b"X")
    again = Storage(tmp_path / "data")
    assert again.find(83, 1) is None
    assert again.inventory() == []
    assert again.quarantined == [(83, 1)]
    assert [p.name for p in again.quarantine_dir.iterdir() if p.suffix != ".sums"]


def test_rotten_sums_are_rebuilt_from_good_bytes_at_first_use(tmp_path: Path) -> None:
    first = Storage(tmp_path / "data")
    write_object(first, 84, 1, BIG)
    stored = first.find(84, 1)
    assert stored is not None
    stored.sums_path.write_bytes(b"\x00" * 32)
    again = Storage(tmp_path / "data")
    found = again.find(84, 1)
    assert found is not None and not found.sums_checked
    assert again.sums_of(found, 0, 4) == checksum.block_sums(BIG)
    assert found.sums_path.read_bytes() == checksum.block_sums(BIG)


def test_verify_quarantines_a_damaged_object_so_it_is_never_served(storage: Storage) -> None:
    write_object(storage, 85, 1, BIG)
    stored = storage.find(85, 1)
    assert stored is not None
    flip(stored.path, 2 * checksum.BLOCK + 3)
    assert storage.verify(85, 1) is False
    assert storage.find(85, 1) is None
    assert storage.inventory() == []
    assert storage.quarantined == [(85, 1)]
    assert storage.usage()["stored"] == 0
    assert not stored.path.exists() and not stored.sums_path.exists()
    assert len(list(storage.quarantine_dir.iterdir())) == 2  # the bytes and their sums


def test_a_copy_never_turns_rotten_bytes_into_a_new_valid_file(storage: Storage) -> None:
    write_object(storage, 86, 1, BIG)
    stored = storage.find(86, 1)
    assert stored is not None
    flip(stored.path, 10)
    with pytest.raises(DamagedObject):
        storage.copy((86, 1), (87, 1))
    assert storage.find(87, 1) is None, "no copy"
    assert storage.find(86, 1) is None, "the source was quarantined"
    assert list(storage.tmp_dir.iterdir()) == []


def test_a_new_version_never_starts_from_a_rotten_base(storage: Storage) -> None:
    write_object(storage, 88, 1, BIG)
    stored = storage.find(88, 1)
    assert stored is not None
    flip(stored.path, 10)
    with pytest.raises(DamagedObject):
        WriteSession.begin(storage, 88, 2, lease=1, base=1)
    assert storage.find(88, 1) is None
    assert list(storage.tmp_dir.iterdir()) == []


def test_a_received_replica_is_refused_unless_it_matches_the_expected_checksum(
    storage: Storage,
) -> None:
    session = WriteSession.begin(storage, 89, 1, lease=0, base=0)
    session.write_at(0, memoryview(BIG))
    with pytest.raises(DamagedObject):
        session.commit(expected=checksum.of_bytes(b"something else"))
    session.discard()
    assert storage.find(89, 1) is None
    session = WriteSession.begin(storage, 89, 1, lease=0, base=0)
    session.write_at(0, memoryview(BIG))
    assert session.commit(expected=checksum.of_bytes(BIG)) == (len(BIG), checksum.of_bytes(BIG))


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as rotten:
        rotten.seek(offset)
        byte = rotten.read(1)
        rotten.seek(offset)
        rotten.write(bytes([byte[0] ^ 1]))


def test_a_sums_file_a_crash_left_empty_is_rebuilt_at_first_use(tmp_path: Path) -> None:
    """Sums are renamed into place without an fsync of their own (one flush of the disk
    fewer per file): a power cut may leave the name with no bytes behind it."""
    first = Storage(tmp_path / "data")
    write_object(first, 85, 1, BIG)
    stored = first.find(85, 1)
    assert stored is not None
    stored.sums_path.write_bytes(b"")
    again = Storage(tmp_path / "data")
    found = again.find(85, 1)
    assert found is not None
    assert again.sums_of(found, 0, 4) == checksum.block_sums(BIG)


def sums_files(storage: Storage) -> list[Path]:
    return sorted(p for p in storage.sums_dir.rglob("*") if p.is_file())


SMALL = os.urandom(checksum.BLOCK)  # one block: the most a file without sums file holds


def test_a_one_block_object_keeps_its_one_sum_in_memory_not_in_a_file(storage: Storage) -> None:
    write_object(storage, 90, 1, SMALL)
    stored = storage.find(90, 1)
    assert stored is not None
    assert sums_files(storage) == []
    assert storage.sums_of(stored, 0, 1) == checksum.block_sums(SMALL)


def test_a_one_block_objects_sum_is_made_from_its_bytes_after_a_restart(tmp_path: Path) -> None:
    write_object(Storage(tmp_path / "data"), 91, 1, SMALL)
    again = Storage(tmp_path / "data")
    found = again.find(91, 1)
    assert found is not None and not found.sums_checked  # nothing read at start
    assert again.sums_of(found, 0, 1) == checksum.block_sums(SMALL)
    assert sums_files(again) == []


def test_a_one_block_object_whose_bytes_rotted_is_quarantined_at_its_first_read(
    tmp_path: Path,
) -> None:
    write_object(Storage(tmp_path / "data"), 92, 1, SMALL)
    again = Storage(tmp_path / "data")
    found = again.find(92, 1)
    assert found is not None
    flip(found.path, 100)
    with pytest.raises(DamagedObject):
        again.sums_of(found, 0, 1)
    assert again.find(92, 1) is None
    assert again.quarantined == [(92, 1)]


# --- group commit -----------------------------------------------------------------------


def test_writes_committed_together_are_each_published_with_their_own_checksum(
    storage: Storage,
) -> None:
    contents = {oid: os.urandom(oid * 700) for oid in range(1, 9)}
    writes = []
    for oid, data in contents.items():
        session = WriteSession.begin(storage, oid, 1, lease=oid, base=0)
        session.write_at(0, memoryview(data))
        writes.append(session)
    outcomes = storage.commit_together(writes)
    assert outcomes == [(len(data), checksum.of_bytes(data)) for data in contents.values()]
    for oid, data in contents.items():
        stored = storage.find(oid, 1)
        assert stored is not None and stored.path.read_bytes() == data
        assert storage.sums_of(stored, 0, 1) == checksum.block_sums(data)[: checksum.SUM_SIZE]
    assert list(storage.tmp_dir.iterdir()) == []


def test_a_write_that_fails_in_a_group_commit_fails_alone(storage: Storage) -> None:
    good = WriteSession.begin(storage, 1, 1, lease=1, base=0)
    good.write_at(0, memoryview(b"good"))
    bad = WriteSession.begin(storage, 2, 1, lease=2, base=0)
    bad.write_at(0, memoryview(b"bad"))
    os.close(bad.fd)  # its fsync will fail, as a disk error would
    bad.fd, writer = os.pipe()  # fsync refuses a pipe (EINVAL)
    os.close(writer)
    outcomes = storage.commit_together([bad, good])
    assert isinstance(outcomes[0], OSError)
    assert outcomes[1] == (4, checksum.of_bytes(b"good"))
    assert storage.find(2, 1) is None and storage.find(1, 1) is not None
    assert list(storage.tmp_dir.iterdir()) == []
    # the failed one was renamed before its flush failed: it is gone again, sums and all
    assert [path.name.split(".")[0] for path in object_files(storage)] == ["1"]
    assert Storage(storage.root).find(2, 1) is None
