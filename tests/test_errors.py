"""Sector's error codes (an interface users know) and the exceptions that carry them."""

from __future__ import annotations

import pickle

import pytest

import sector
from sector import errors
from sector.errors import SectorError, code_name, describe, error_for

#: The table in ARCHITECTURE.md, which is Sector's own list: name -> code.
SECTOR_CODES = {
    "E_UNKNOWN": -1,
    "E_PERMISSION": -1001,
    "E_EXIST": -1002,
    "E_NOEXIST": -1003,
    "E_BUSY": -1004,
    "E_LOCALFILE": -1005,
    "E_NOEMPTY": -1006,
    "E_SECURITY": -2000,
    "E_NOCERT": -2001,
    "E_ACCOUNT": -2002,
    "E_PASSWORD": -2003,
    "E_ACL": -2004,
    "E_INITCTX": -2005,
    "E_NOSECSERV": -2006,
    "E_EXPIRED": -2007,
    "E_CONNECTION": -3000,
    "E_RESOURCE": -4000,
    "E_NODISK": -4001,
    "E_TIMEDOUT": -5000,
    "E_INVALID": -6000,
    "E_SUPPORT": -6001,
}
ALL = sorted(SECTOR_CODES.items(), key=lambda item: item[1])


@pytest.mark.parametrize(("name", "code"), ALL)
def test_every_sector_code_has_its_number_and_name(name: str, code: int) -> None:
    assert getattr(errors, name) == code
    assert code_name(code) == name
    assert describe(code)


@pytest.mark.parametrize(("name", "code"), ALL)
def test_the_module_api_exports_every_code(name: str, code: int) -> None:
    assert getattr(sector, name) == code
    assert name in sector.__all__


def test_descriptions_cover_exactly_the_sector_codes() -> None:
    assert {name for name, _ in errors.DESCRIPTIONS.values()} == set(SECTOR_CODES)
    assert set(errors.DESCRIPTIONS) == set(SECTOR_CODES.values())


def test_unknown_codes_are_shown_as_numbers() -> None:
    assert code_name(-12345) == "-12345"
    assert describe(-12345) == "error -12345"


@pytest.mark.parametrize(
    ("code", "builtin"),
    [
        (errors.E_PERMISSION, PermissionError),
        (errors.E_EXIST, FileExistsError),
        (errors.E_NOEXIST, FileNotFoundError),
        (errors.E_BUSY, BlockingIOError),
        (errors.E_LOCALFILE, OSError),
        (errors.E_NOEMPTY, OSError),
        (errors.E_CONNECTION, ConnectionError),
        (errors.E_TIMEDOUT, TimeoutError),
        (errors.E_INVALID, ValueError),
        (errors.E_SUPPORT, NotImplementedError),
    ],
)
def test_error_for_subclasses_the_builtin_a_python_programmer_expects(
    code: int, builtin: type[BaseException]
) -> None:
    exc = error_for(code, "message", "/p")
    assert isinstance(exc, builtin)
    assert isinstance(exc, SectorError)
    assert exc.code == code
    assert exc.path == "/p"


@pytest.mark.parametrize(
    ("kind", "builtin"),
    [
        (errors.KIND_IS_A_DIRECTORY, IsADirectoryError),
        (errors.KIND_NOT_A_DIRECTORY, NotADirectoryError),
    ],
)
def test_kind_refines_e_invalid_into_directory_errors(
    kind: str, builtin: type[BaseException]
) -> None:
    exc = error_for(errors.E_INVALID, "msg", "/d", kind=kind)
    assert isinstance(exc, builtin)
    assert exc.code == errors.E_INVALID


def test_os_like_errors_carry_errno_and_filename() -> None:
    exc = error_for(errors.E_NOEXIST, "", "/missing")
    assert isinstance(exc, OSError)
    assert exc.errno == 2
    assert exc.filename == "/missing"
    assert exc.strerror == describe(errors.E_NOEXIST)


@pytest.mark.parametrize("name", [n for n in SECTOR_CODES if -2999 <= SECTOR_CODES[n] <= -2000])
def test_every_security_code_gives_a_security_error_keeping_its_code(name: str) -> None:
    exc = error_for(SECTOR_CODES[name], "no")
    assert isinstance(exc, errors.SecurityError)
    assert exc.code == SECTOR_CODES[name]


def test_resource_codes_share_a_base_class() -> None:
    assert isinstance(error_for(errors.E_NODISK), errors.ResourceError)
    assert error_for(errors.E_NODISK).code == errors.E_NODISK


@pytest.mark.parametrize("code", [errors.E_UNKNOWN, -77])
def test_codes_without_a_class_give_a_plain_sector_error(code: int) -> None:
    exc = error_for(code, "odd")
    assert type(exc) is SectorError
    assert exc.code == code


@pytest.mark.parametrize(("name", "code"), ALL)
def test_the_message_names_the_code_and_the_path(name: str, code: int) -> None:
    exc = error_for(code, "", "/some/path")
    assert name in str(exc)
    assert "/some/path" in str(exc)
    assert describe(code) in str(exc)


@pytest.mark.parametrize(("name", "code"), ALL)
def test_pickling_keeps_class_code_path_and_message(name: str, code: int) -> None:
    exc = error_for(code, "detail here", "/p")
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert (copy.code, copy.path, str(copy)) == (exc.code, exc.path, str(exc))


@pytest.mark.parametrize("kind", [errors.KIND_IS_A_DIRECTORY, errors.KIND_NOT_A_DIRECTORY])
def test_pickling_keeps_the_directory_kinds(kind: str) -> None:
    exc = error_for(errors.E_INVALID, "detail", "/d", kind=kind)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert copy.code == errors.E_INVALID
