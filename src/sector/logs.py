"""Server logging at Sector's LOG_LEVEL: 0 is silent, 9 records everything.

Levels map onto Python's: 1-4 record start-up, membership changes, warnings
and errors (INFO); 5 and above add every request (DEBUG).
"""

from __future__ import annotations

import logging
from pathlib import Path


def python_level(sector_level: int) -> int:
    if sector_level <= 0:
        return logging.CRITICAL + 1
    return logging.INFO if sector_level < 5 else logging.DEBUG


def setup_logging(path: Path, sector_level: int) -> None:
    """Log to ``path`` (created with its folder), timestamped, at ``sector_level``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(python_level(sector_level))
