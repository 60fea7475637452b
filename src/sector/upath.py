"""``UPath("sector://host:port/path")``: Sector for universal-pathlib, found by entry point.

universal-pathlib warns about (and calls untested) any protocol without its own
class; this one is tested (``tests/fs/test_datastack.py``). Everything goes
through :class:`sector.fs.SectorFileSystem`, so there is nothing to add here.
Imported only by universal-pathlib, which must be installed (``pysector[data]``).
"""

from __future__ import annotations

import fsspec
from upath import UPath

# universal-pathlib reads a protocol's path rules from the fsspec class, which it
# finds only once fsspec has loaded it; otherwise it warns and guesses.
fsspec.get_filesystem_class("sector")


class SectorPath(UPath):
    """A path on a Sector cluster; see :class:`upath.UPath` for the methods."""

    __slots__ = ()


__all__ = ["SectorPath"]
