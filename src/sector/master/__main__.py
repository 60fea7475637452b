"""``python -m sector.master``: the same command as ``sector master``."""

from __future__ import annotations

from ..cli.servers import master

if __name__ == "__main__":
    master(prog_name="python -m sector.master")
