"""The first thing a user tries: the PySector session from its README."""

from pathlib import Path


def test_readme_session_uploads_and_reads_back(pysector, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(b"hello\x00sector\n" * 1000)
    assert pysector.mkdir("/smoke") == 0
    assert pysector.upload(str(local), "/smoke/a.bin") == 0
    handle = pysector.open("/smoke/a.bin", 1)
    assert handle >= 0
    data = b""
    while chunk := pysector.read(handle, 4096):
        data += chunk
    assert pysector.close(handle) == 0
    assert data == local.read_bytes()
