"""Where a client's settings come from: arguments, then the environment, then client.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from sector.client import Client
from sector.client.connect import resolve
from sector.client.session import DATA_TIMEOUT
from sector.errors import InvalidError


def home_with(tmp_path: Path, conf: str) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "client.conf").write_text(conf)
    return tmp_path


def test_the_read_timeout_comes_from_client_conf(tmp_path: Path) -> None:
    home = home_with(tmp_path, "DATA_TIMEOUT\n\t2.5\n")
    assert resolve(home=home, environ={}).data_timeout == 2.5


def test_the_environment_comes_before_client_conf(tmp_path: Path) -> None:
    home = home_with(tmp_path, "DATA_TIMEOUT\n\t2.5\n")
    target = resolve(home=home, environ={"SECTOR_DATA_TIMEOUT": "0.5"})
    assert target.data_timeout == 0.5


def test_without_either_a_client_waits_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECTOR_DATA_TIMEOUT", raising=False)
    assert resolve(home=home_with(tmp_path, ""), environ={}).data_timeout is None
    assert Client("localhost", 1).data_timeout == DATA_TIMEOUT == 30.0
    assert Client("localhost", 1, data_timeout=3).data_timeout == 3
    monkeypatch.setenv("SECTOR_DATA_TIMEOUT", "7")
    assert Client("localhost", 1).data_timeout == 7


@pytest.mark.parametrize("text", ["soon", "0", "-1"])
def test_a_malformed_timeout_is_refused(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTOR_DATA_TIMEOUT", text)
    with pytest.raises(InvalidError, match="SECTOR_DATA_TIMEOUT"):
        Client("localhost", 1)


def test_the_master_timeout_comes_from_the_argument_then_client_conf(tmp_path: Path) -> None:
    home = home_with(tmp_path, "MASTER_TIMEOUT\n\t9\n")
    assert resolve(home=home, environ={}).timeout == 9.0
    assert resolve(home=home, environ={}, timeout=4.0).timeout == 4.0
    unset = resolve(home=tmp_path / "elsewhere", environ={})
    assert unset.timeout is None  # the client's default applies
