#!/usr/bin/env python3
"""upath_notes.py - pathlib on Sector with universal-pathlib's ``UPath("sector://...")``.

    python examples/upath_notes.py [BASE_URL]

BASE_URL defaults to ``sector:///examples/upath``.
"""

from __future__ import annotations

import sys

from upath import UPath


def main(base: str) -> None:
    notes = UPath(base) / "notes"
    notes.mkdir(parents=True, exist_ok=True)
    (notes / "monday.txt").write_text("rack 4 fan replaced\n")
    (notes / "tuesday.txt").write_text("slave 3 disk at 91%\nordered a spare\n")
    for note in sorted(notes.glob("*.txt"), key=lambda p: p.name):
        lines = note.read_text().splitlines()
        print(f"{note.name}: {len(lines)} line(s), {note.stat().st_size} bytes; first: {lines[0]}")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "sector:///examples/upath")
