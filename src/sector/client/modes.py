"""Open modes: Python's mode strings and Sector's mode bits, one translated into the other.

``Client.open`` takes either. Python's strings (``"rb"``, ``"wb"``, ``"ab"``,
``"r+b"``, ``"xb"``, and the text modes ``"r"``/``"w"``/``"a"``/``"x"`` with
``+``) follow :func:`open`'s rules: ``r+`` needs the file to exist, ``x``
refuses an existing one (atomically, at the master), ``a`` writes at the end
whatever the position. Sector's integers (``READ`` 1, ``WRITE`` 2, ``RW`` 3,
``TRUNC`` 4, ``APPEND`` 8, ``SECURE`` 16, ``HIRELIABLE`` 32) keep PySector's
meaning: a missing file is created by any write mode, and ``APPEND`` only
starts the position at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidError
from ..protocol.master import Create
from ..protocol.messages import APPEND, READ, TRUNC, WRITE

#: Sector mode bits of each Python mode letter, and what it does about creating.
_LETTERS: dict[str, tuple[int, Create]] = {
    "r": (READ, "never"),
    "w": (WRITE | TRUNC, "allow"),
    "a": (WRITE | APPEND, "allow"),
    "x": (WRITE | TRUNC, "exclusive"),
}


@dataclass(frozen=True)
class OpenMode:
    """One way of opening a file, whichever way it was written."""

    #: Sector's mode bits, as the master takes them.
    bits: int
    #: The binary file's ``mode``, as Python names it: ``rb``, ``wb``, ``ab``, ``rb+`` ...
    name: str
    create: Create = "allow"
    #: Every write goes to the end of the file (Python's ``a``; Sector's APPEND only starts there).
    append: bool = False
    #: A text mode: the binary file is wrapped in an ``io.TextIOWrapper``.
    text: bool = False

    @property
    def readable(self) -> bool:
        return bool(self.bits & READ) or not self.writing

    @property
    def writing(self) -> bool:
        return bool(self.bits & (WRITE | TRUNC | APPEND))


def parse_mode(mode: str | int) -> OpenMode:
    """The :class:`OpenMode` for a Python mode string or Sector's mode bits.

    Raises InvalidError (a ValueError, E_INVALID) for a string :func:`open`
    would refuse (``"rw"``, ``"bt"``, ``"r++"``) or a type that is neither.
    """
    if isinstance(mode, bool) or not isinstance(mode, (int, str)):
        raise InvalidError(f"mode must be a string like 'rb' or Sector's mode bits, not {mode!r}")
    if isinstance(mode, int):
        return OpenMode(mode, _name_of_bits(mode))
    letters = [c for c in mode if c in _LETTERS]
    if (
        len(letters) != 1
        or len(set(mode)) != len(mode)
        or set(mode) - set("rwaxbt+")
        or ("b" in mode and "t" in mode)
    ):
        raise InvalidError(f"invalid mode: {mode!r} (one of r, w, a, x, then b or t, and +)")
    bits, create = _LETTERS[letters[0]]
    plus = "+" in mode
    if plus:
        bits |= READ | WRITE
    return OpenMode(
        bits,
        letters[0] + "b" + ("+" if plus else ""),
        create,
        append=letters[0] == "a",
        text="b" not in mode,
    )


def _name_of_bits(bits: int) -> str:
    """Python's name for what Sector's bits allow (``WRITE`` alone is ``wb``, as for
    ``os.open(O_WRONLY)``; whether the old bytes stay is Sector's TRUNC, not the name)."""
    writing = bool(bits & (WRITE | TRUNC | APPEND))
    if not writing:
        return "rb"
    letter = "a" if bits & APPEND else ("w" if bits & TRUNC or not bits & READ else "r")
    return letter + "b" + ("+" if bits & READ else "")


__all__ = ["Create", "OpenMode", "parse_mode"]
