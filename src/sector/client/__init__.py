"""The blocking client library: :class:`Client` sessions and :class:`SectorFile`."""

from .file import POS_BEG, POS_CUR, POS_END, SectorFile
from .session import Client, Stat

__all__ = ["POS_BEG", "POS_CUR", "POS_END", "Client", "SectorFile", "Stat"]
