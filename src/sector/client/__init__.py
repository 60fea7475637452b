"""The blocking client library: :class:`Client` sessions and :class:`SectorFile`."""

from .file import SectorFile, SectorTextFile
from .session import Client, Stat

__all__ = ["Client", "SectorFile", "SectorTextFile", "Stat"]
