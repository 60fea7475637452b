"""Accounts: salted password hashes, login checks and path permissions."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from sector.errors import E_ACCOUNT, E_ACL, E_PASSWORD, E_PERMISSION, SecurityError
from sector.master.users import User, Users, check_password, hash_password, is_hashed


def test_a_hash_checks_its_own_password_and_no_other() -> None:
    stored = hash_password("xxx")
    assert check_password("xxx", stored)
    assert not check_password("xxy", stored)
    assert not check_password("", stored)


def test_hashes_are_salted_and_never_hold_the_clear_text() -> None:
    first, second = hash_password("xxx"), hash_password("xxx")
    assert first != second
    assert "xxx" not in first.split("$", 1)[1]
    assert is_hashed(first) and first.startswith("scrypt$")


def test_a_given_salt_makes_the_hash_reproducible() -> None:
    assert hash_password("pw", salt=b"s" * 16) == hash_password("pw", salt=b"s" * 16)


@pytest.mark.parametrize("text", ["xxx", "scrypt$only-one", "bcrypt$a$b", ""])
def test_clear_text_is_not_mistaken_for_a_hash(text: str) -> None:
    assert not is_hashed(text)


def write_user(users_dir: Path, name: str, body: str) -> None:
    users_dir.mkdir(parents=True, exist_ok=True)
    (users_dir / name).write_text(body)


@pytest.fixture
def users(tmp_path: Path) -> Users:
    users_dir = tmp_path / "users"
    write_user(users_dir, "test", "PASSWORD\n\txxx\nREAD_PERMISSION\n\t/\nWRITE_PERMISSION\n\t/w\n")
    write_user(users_dir, "hashed", f"PASSWORD\n\t{hash_password('secret')}\n")
    write_user(users_dir, "lab", "PASSWORD\n\tp\nACL\n\t10.0.0.0/8\n\t::1\n")
    write_user(users_dir, "root", "PASSWORD\n\tr\n")
    write_user(users_dir, "ops", "PASSWORD\n\to\nADMIN\n\tTRUE\n")
    return Users.load(users_dir)


def test_clear_text_passwords_are_hashed_at_load(users: Users) -> None:
    test = users.authenticate("test", "xxx", "127.0.0.1")
    assert is_hashed(test.password_hash)
    assert "xxx" not in test.password_hash


def test_hashed_entries_are_kept_as_written(users: Users) -> None:
    assert users.authenticate("hashed", "secret", "127.0.0.1").name == "hashed"


def test_an_unknown_user_is_answered_as_a_wrong_password_is_in_as_long(users: Users) -> None:
    assert "nobody" not in users and "test" in users
    answers, times = [], {}
    for name in ("nobody", "test") * 3:
        started = time.perf_counter()
        with pytest.raises(SecurityError) as caught:
            users.authenticate(name, "not the password", "127.0.0.1")
        times.setdefault(name, []).append(time.perf_counter() - started)
        answers.append((caught.value.code, caught.value.detail))
    assert set(answers) == {(E_PASSWORD, "incorrect user name or password")}
    unknown, known = sorted(times["nobody"])[1], sorted(times["test"])[1]  # medians
    assert 0.5 < unknown / known < 2, (unknown, known)  # the same scrypt, both ways


def test_unknown_users_are_named_only_where_the_configuration_asks(tmp_path: Path) -> None:
    write_user(tmp_path / "users", "test", "PASSWORD\n\txxx\n")
    told = Users.load(tmp_path / "users", reveal_unknown=True)
    with pytest.raises(SecurityError) as caught:
        told.authenticate("nobody", "xxx", "127.0.0.1")
    assert (caught.value.code, caught.value.detail) == (E_ACCOUNT, "no user named 'nobody'")


def test_a_wrong_password_is_e_password(users: Users) -> None:
    with pytest.raises(SecurityError) as caught:
        users.authenticate("test", "wrong", "127.0.0.1")
    assert caught.value.code == E_PASSWORD


@pytest.mark.parametrize("address", ["10.1.2.3", "::1"])
def test_a_user_with_an_acl_may_log_in_from_inside_it(users: Users, address: str) -> None:
    assert users.authenticate("lab", "p", address).name == "lab"


@pytest.mark.parametrize("address", ["192.168.0.1", "127.0.0.1", "not-an-ip"])
def test_a_login_from_outside_the_acl_is_e_acl(users: Users, address: str) -> None:
    with pytest.raises(SecurityError) as caught:
        users.authenticate("lab", "p", address)
    assert caught.value.code == E_ACL


def test_the_password_is_checked_before_the_acl(users: Users) -> None:
    """A guesser outside the ACL learns nothing more than a wrong password."""
    with pytest.raises(SecurityError) as caught:
        users.authenticate("lab", "wrong", "192.168.0.1")
    assert caught.value.code == E_PASSWORD


def test_root_and_users_marked_admin_true_are_admins(users: Users) -> None:
    assert users.authenticate("root", "r", "127.0.0.1").admin
    assert users.authenticate("ops", "o", "127.0.0.1").admin
    assert not users.authenticate("test", "xxx", "127.0.0.1").admin


# --- conf/users changing under a running master -------------------------------------


def test_a_user_added_while_running_can_log_in_at_once(users: Users, tmp_path: Path) -> None:
    write_user(tmp_path / "users", "new", f"PASSWORD\n\t{hash_password('n3w')}\n")
    assert users.authenticate("new", "n3w", "127.0.0.1").name == "new"


def test_a_changed_password_and_a_removed_user_take_effect_at_the_next_login(
    users: Users, tmp_path: Path
) -> None:
    users_dir = tmp_path / "users"
    write_user(users_dir, "hashed", f"PASSWORD\n\t{hash_password('changed')}\n")
    (users_dir / "lab").unlink()
    assert users.authenticate("hashed", "changed", "127.0.0.1").name == "hashed"
    with pytest.raises(SecurityError) as caught:
        users.authenticate("lab", "p", "10.1.2.3")
    assert caught.value.code == E_PASSWORD  # as unknown as any never-known user


def test_a_bad_file_keeps_the_accounts_in_force_and_is_logged(
    users: Users, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_user(tmp_path / "users", "broken", "PASSWORD\n\tx\nACL\n\tnowhere\n")
    with caplog.at_level(logging.ERROR, logger="sector.master"):
        assert users.authenticate("test", "xxx", "127.0.0.1").name == "test"
        users.authenticate("test", "xxx", "127.0.0.1")  # unchanged since: not reported again
    assert [r.getMessage() for r in caplog.records] == [
        f"users not reloaded, the accounts in force stay: {tmp_path / 'users' / 'broken'}:4: "
        "'nowhere' is not an IP address or CIDR"
    ]
    assert "broken" not in users


def test_files_being_written_by_sector_user_are_not_read_half_done(
    users: Users, tmp_path: Path
) -> None:
    # `sector user` writes .<name>.<pid>.tmp, then renames it into place
    write_user(tmp_path / "users", ".half.123.tmp", "PASSW")
    assert users.authenticate("test", "xxx", "127.0.0.1").name == "test"
    assert ".half.123.tmp" not in users


# --- permissions --------------------------------------------------------------------


def make_user(read: list[str], write: list[str], admin: bool = False) -> User:
    return User("u", hash_password("x", salt=b"0" * 16), read=read, write=write, admin=admin)


def test_permissions_cover_the_prefix_and_everything_below_it() -> None:
    user = make_user(read=["/data"], write=["/data/out"])
    assert user.can_read("/data") and user.can_read("/data/a/b")
    assert user.can_write("/data/out") and user.can_write("/data/out/x")
    assert not user.can_write("/data/in")


def test_a_prefix_matches_whole_names_only() -> None:
    user = make_user(read=["/data"], write=["/data"])
    assert not user.can_read("/database")
    assert not user.can_write("/data2/x")


def test_write_permission_implies_read() -> None:
    user = make_user(read=[], write=["/w"])
    assert user.can_read("/w/f")
    assert not user.can_read("/r")


def test_read_permission_on_the_root_reads_everything_but_writes_nothing() -> None:
    user = make_user(read=["/"], write=[])
    assert user.can_read("/any/where")
    assert not user.can_write("/any/where")


def test_an_admin_may_do_anything() -> None:
    admin = make_user(read=[], write=[], admin=True)
    assert admin.can_read("/x") and admin.can_write("/x")


def test_check_read_and_check_write_raise_e_permission_naming_the_path() -> None:
    user = make_user(read=["/r"], write=[])
    user.check_read("/r/f")
    with pytest.raises(PermissionError) as caught:
        user.check_write("/r/f")
    assert caught.value.code == E_PERMISSION
    assert caught.value.path == "/r/f"
    with pytest.raises(PermissionError):
        user.check_read("/other")


def test_a_browser_may_show_the_way_to_what_a_user_may_read_and_no_further() -> None:
    user = make_user(read=["/home/alice"], write=["/shared/out"])
    assert all(user.can_browse(p) for p in ("/", "/home", "/home/alice", "/home/alice/x"))
    assert user.can_browse("/shared") and user.can_browse("/shared/out/f")
    assert not user.can_browse("/home/bob") and not user.can_browse("/homework")
    assert not user.can_read("/home")  # shown as a way in, not readable
