"""Every Sector error code has the errno the README promises (no kernel needed)."""

from __future__ import annotations

import errno

import pytest

from sector import errors
from sector.mount.errors import ERRNO_BY_CODE, MountError, errno_boundary, errno_for


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errors.E_NOEXIST, errno.ENOENT),
        (errors.E_EXIST, errno.EEXIST),
        (errors.E_NOEMPTY, errno.ENOTEMPTY),
        (errors.E_PERMISSION, errno.EACCES),
        (errors.E_BUSY, errno.EBUSY),
        (errors.E_NODISK, errno.ENOSPC),
        (errors.E_CONNECTION, errno.EIO),
        (errors.E_TIMEDOUT, errno.ETIMEDOUT),
        (errors.E_RESOURCE, errno.EIO),
        (errors.E_SUPPORT, errno.EOPNOTSUPP),
        (errors.E_INVALID, errno.EINVAL),
        (errors.E_EXPIRED, errno.EACCES),
        (errors.E_UNKNOWN, errno.EIO),
    ],
)
def test_sector_codes_map_to_errno(code: int, expected: int) -> None:
    assert errno_for(errors.error_for(code, "x", "/p")) == expected


def test_is_and_is_not_a_directory_keep_their_precise_errno() -> None:
    assert errno_for(errors.error_for(errors.E_INVALID, "", "/d", "isdir")) == errno.EISDIR
    assert errno_for(errors.error_for(errors.E_INVALID, "", "/f", "notdir")) == errno.ENOTDIR


def test_every_known_code_has_an_errno() -> None:
    assert set(errors.DESCRIPTIONS) - set(ERRNO_BY_CODE) <= {
        errors.E_INITCTX,
        errors.E_NOCERT,
        errors.E_NOSECSERV,
    }


def test_the_boundary_turns_any_failure_into_an_oserror_with_errno() -> None:
    @errno_boundary
    def missing(self: object, path: str) -> None:
        raise errors.SectorNotFoundError("gone", path)

    @errno_boundary
    def broken(self: object, path: str) -> None:
        raise KeyError("a bug")

    with pytest.raises(MountError) as raised:
        missing(None, "/x")
    assert raised.value.errno == errno.ENOENT
    with pytest.raises(MountError) as raised:
        broken(None, "/x")
    assert raised.value.errno == errno.EIO
