"""PySector's module API against a real cluster: every call, its success and its errors.

These are the calls PySector's README documents; each returns a status (>= 0
on success, the negative Sector code on failure) and never raises for
file-system errors.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

import sector
from sector import certs
from tests.support import PASSWORD, USER


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read_all(api, handle: int, chunk: int = 4096) -> bytes:
    data = b""
    while piece := api.read(handle, chunk):
        assert isinstance(piece, bytes), f"read returned status {piece}"
        data += piece
    return data


class TestLogin:
    def test_login_logout_closeclient_return_zero(self, cluster) -> None:
        host, port = cluster.master_address
        assert sector.init(host, port) == 0
        assert sector.login(USER, PASSWORD, str(cluster.layout.cert)) == 0
        assert sector.logout() == 0
        assert sector.closeclient() == 0

    def test_unknown_user_is_e_password_as_a_wrong_password_is(self, cluster) -> None:
        sector.init(*cluster.master_address)
        assert sector.login("nobody", PASSWORD, str(cluster.layout.cert)) == sector.E_PASSWORD

    def test_wrong_password_is_e_password(self, cluster) -> None:
        sector.init(*cluster.master_address)
        assert sector.login(USER, "wrong", str(cluster.layout.cert)) == sector.E_PASSWORD

    def test_missing_certificate_is_e_nocert(self, cluster, tmp_path: Path) -> None:
        sector.init(*cluster.master_address)
        assert sector.login(USER, PASSWORD, str(tmp_path / "none.cert")) == sector.E_NOCERT

    def test_certificate_of_another_master_is_e_security(self, cluster, tmp_path: Path) -> None:
        other_cert = tmp_path / "other.cert"
        certs.create(other_cert, tmp_path / "other.key")
        sector.init(*cluster.master_address)
        assert sector.login(USER, PASSWORD, str(other_cert)) == sector.E_SECURITY

    def test_unreachable_master_is_e_connection_within_seconds(self, cluster) -> None:
        sector.init("127.0.0.1", _free_port())
        started = time.monotonic()
        assert sector.login(USER, PASSWORD, str(cluster.layout.cert)) == sector.E_CONNECTION
        assert time.monotonic() - started < 6

    def test_calls_before_login_fail_cleanly(self) -> None:
        sector.closeclient()
        assert sector.mkdir("/never") < 0
        assert sector.stat("/") is None

    def test_default_certificate_comes_from_sector_home(self, cluster, monkeypatch) -> None:
        monkeypatch.setenv("SECTOR_HOME", str(cluster.layout.home))
        sector.init(*cluster.master_address)
        assert sector.login(USER, PASSWORD) == 0
        assert sector.closeclient() == 0


class TestNamespace:
    def test_mkdir_creates_parents_and_refuses_existing(self, pysector) -> None:
        assert pysector.mkdir("/api/mk/a/b/c") == 0
        assert pysector.stat("/api/mk/a/b").isdir
        assert pysector.mkdir("/api/mk/a/b/c") == sector.E_EXIST

    def test_paths_are_normalised(self, pysector) -> None:
        assert pysector.mkdir("/api/norm//x/./y/") == 0
        assert pysector.stat("/api/norm/x/y").isdir
        assert pysector.stat("api/norm/x/../x/y").name == "y"

    @pytest.mark.parametrize("bad", ["/../etc", "/a/../../b", "", "/nul\x00byte"])
    def test_invalid_paths_are_e_invalid(self, pysector, bad: str) -> None:
        assert pysector.mkdir(bad) == sector.E_INVALID
        assert pysector.open(bad, 1) == sector.E_INVALID

    def test_rm_is_recursive_and_missing_is_e_noexist(self, pysector, tmp_path: Path) -> None:
        local = tmp_path / "f"
        local.write_bytes(b"x")
        assert pysector.upload(str(local), "/api/rm/d/e/f") == 0
        assert pysector.rm("/api/rm/d") == 0
        assert pysector.stat("/api/rm/d") is None
        assert pysector.rm("/api/rm/d") == sector.E_NOEXIST
        assert pysector.remove("/api/rm") == 0

    def test_move_renames_and_refuses_existing_target(self, pysector, tmp_path: Path) -> None:
        local = tmp_path / "f"
        local.write_bytes(b"moved")
        assert pysector.upload(str(local), "/api/mv/src") == 0
        assert pysector.upload(str(local), "/api/mv/taken") == 0
        assert pysector.move("/api/mv/src", "/api/mv/taken") == sector.E_EXIST
        assert pysector.move("/api/mv/src", "/api/mv/dst") == 0
        assert pysector.stat("/api/mv/src") is None
        assert pysector.stat("/api/mv/dst").size == 5
        assert pysector.move("/api/mv/nothing", "/api/mv/x") == sector.E_NOEXIST

    def test_cp_copies_content_and_refuses_existing_target(self, pysector, tmp_path: Path) -> None:
        local = tmp_path / "f"
        local.write_bytes(b"\x00copy me\x00" * 100)
        assert pysector.upload(str(local), "/api/cp/a") == 0
        assert pysector.cp("/api/cp/a", "/api/cp/b") == 0
        assert pysector.copy("/api/cp/a", "/api/cp/b") == sector.E_EXIST
        assert pysector.cp("/api/cp/none", "/api/cp/c") == sector.E_NOEXIST
        original, copied = pysector.stat("/api/cp/a"), pysector.stat("/api/cp/b")
        assert copied.size == original.size and copied.checksum == original.checksum
        handle = pysector.open("/api/cp/b", 1)
        assert _read_all(pysector, handle) == local.read_bytes()
        assert pysector.close(handle) == 0

    def test_stat_reports_pysector_fields(self, pysector, tmp_path: Path) -> None:
        local = tmp_path / "f"
        local.write_bytes(b"12345")
        before = time.time()
        assert pysector.upload(str(local), "/api/stat/f") == 0
        info = pysector.stat("/api/stat/f")
        assert (info.name, info.isdir, info.size) == ("f", False, 5)
        assert before - 5 <= info.timestamp <= time.time() + 5
        assert info.version == 1 and info.checksum and info.slaves
        assert pysector.stat("/api/stat/missing") is None

    def test_ls_lists_directory_and_file_and_none_when_missing(
        self, pysector, tmp_path: Path
    ) -> None:
        local = tmp_path / "f"
        local.write_bytes(b"1")
        for name in ("b", "a", "c"):
            assert pysector.upload(str(local), f"/api/ls/{name}") == 0
        assert pysector.mkdir("/api/ls/sub") == 0
        assert [e.name for e in pysector.ls("/api/ls")] == ["a", "b", "c", "sub"]
        assert [e.name for e in pysector.list("/api/ls/a")] == ["a"]
        assert pysector.ls("/api/ls/missing") is None


class TestFiles:
    def test_open_missing_file_for_reading_is_e_noexist(self, pysector) -> None:
        assert pysector.open("/api/files/missing", 1) == sector.E_NOEXIST

    def test_write_then_read_is_binary_safe(self, pysector) -> None:
        payload = bytes(range(256)) * 64 + b"\x00\x00tail"
        handle = pysector.open("/api/files/bin", sector.SF_MODE.WRITE)
        assert handle >= 0
        assert pysector.write(handle, payload) == len(payload)
        assert pysector.write(handle, b"abcdef", 3) == 3
        assert pysector.close(handle) == 0
        handle = pysector.open("/api/files/bin", sector.SF_MODE.READ)
        assert _read_all(pysector, handle, 1000) == payload + b"abc"
        assert pysector.read(handle, 10) == b""
        assert pysector.close(handle) == 0

    def test_unknown_handle_is_e_invalid(self, pysector) -> None:
        assert pysector.read(12345, 10) == sector.E_INVALID
        assert pysector.close(12345) == sector.E_INVALID

    def test_open_directory_is_refused(self, pysector) -> None:
        pysector.mkdir("/api/files/dir")
        assert pysector.open("/api/files/dir", 1) == sector.E_INVALID

    def test_upload_download_round_trip(self, pysector, tmp_path: Path) -> None:
        local = tmp_path / "in.bin"
        local.write_bytes(b"\x00" * 1000 + b"data" * 10000)
        assert pysector.upload(str(local), "/api/files/up") == 0
        out = tmp_path / "out.bin"
        assert pysector.download("/api/files/up", str(out)) == 0
        assert out.read_bytes() == local.read_bytes()

    def test_upload_of_missing_local_file_is_e_localfile(self, pysector, tmp_path: Path) -> None:
        assert pysector.upload(str(tmp_path / "absent"), "/api/files/x") == sector.E_LOCALFILE
        assert pysector.stat("/api/files/x") is None

    def test_download_of_missing_file_is_e_noexist_and_leaves_no_local_file(
        self, pysector, tmp_path: Path
    ) -> None:
        out = tmp_path / "never"
        assert pysector.download("/api/files/absent", str(out)) == sector.E_NOEXIST
        assert list(tmp_path.iterdir()) == []

    def test_seek_tell_eof(self, pysector) -> None:
        handle = pysector.open("/api/files/seek", sector.SF_MODE.WRITE)
        pysector.write(handle, b"0123456789")
        pysector.close(handle)
        handle = pysector.open("/api/files/seek", sector.SF_MODE.READ)
        assert pysector.seek(handle, -3, sector.SF_POS.END) == 7
        assert pysector.read(handle, 10) == b"789"
        assert pysector.eof(handle) is True
        assert pysector.seek(handle, 2, sector.SF_POS.BEG) == 2
        assert pysector.seek(handle, 2, sector.SF_POS.CUR) == 4
        assert pysector.tell(handle) == 4
        assert pysector.read(handle, 2) == b"45"
        assert pysector.close(handle) == 0

    def test_module_functions_are_thread_safe(self, pysector) -> None:
        errors: list[str] = []

        def worker(number: int) -> None:
            payload = f"thread {number}\n".encode() * 500
            path = f"/api/threads/{number}"
            for _ in range(5):
                handle = pysector.open(path, sector.SF_MODE.WRITE | sector.SF_MODE.TRUNC)
                if handle < 0 or pysector.write(handle, payload) != len(payload):
                    errors.append(f"write {number}: {handle}")
                    return
                if pysector.close(handle) != 0:
                    errors.append(f"close {number}")
                handle = pysector.open(path, sector.SF_MODE.READ)
                if _read_all(pysector, handle) != payload:
                    errors.append(f"content {number}")
                pysector.close(handle)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert len(pysector.ls("/api/threads")) == 8
