"""Where the client's settings come from: arguments first, then client.conf."""

from __future__ import annotations

from pathlib import Path

from sector.client.connect import resolve


def test_the_master_timeout_comes_from_the_argument_then_client_conf(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "client.conf").write_text("MASTER_TIMEOUT\n\t9\n")
    assert resolve(home=tmp_path, environ={}).timeout == 9.0
    assert resolve(home=tmp_path, environ={}, timeout=4.0).timeout == 4.0
    unset = resolve(home=tmp_path / "elsewhere", environ={})
    assert unset.timeout is None  # the client's default applies
