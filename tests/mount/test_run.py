"""Mount options as ``-o`` gives them (no kernel needed)."""

from __future__ import annotations

from pathlib import Path

from sector.mount.run import BASE_OPTIONS, default_log_path, mount_options, parse_options


def test_o_groups_become_libfuse_options() -> None:
    assert parse_options(["ro,allow_other", "attr_timeout=5", ""]) == {
        "ro": True,
        "allow_other": True,
        "attr_timeout": "5",
    }


def test_given_options_override_the_defaults() -> None:
    options = mount_options("sector://h:1", {"attr_timeout": "5"})
    assert options["attr_timeout"] == "5"
    assert options["fsname"] == "sector://h:1"
    assert BASE_OPTIONS["attr_timeout"] == "1.0"


def test_the_kernel_checks_permissions_only_when_other_users_may_enter() -> None:
    assert "default_permissions" not in mount_options("sector://h:1", {})
    shared = mount_options("sector://h:1", {"allow_other": True})
    assert shared["default_permissions"] is True


def test_only_a_writers_close_is_sent_to_the_mount() -> None:
    """A read-only descriptor has nothing to publish at close: libfuse tells the kernel
    not to send its FLUSH (one request fewer per file read)."""
    assert mount_options("sector://h:1", {})["no_rofd_flush"] is True


def test_the_default_log_is_named_after_the_mountpoint(tmp_path: Path) -> None:
    assert default_log_path(tmp_path, "/mnt/sector") == tmp_path / "logs" / "mount-mnt_sector.log"
