"""``python -m sector.slave``: the same command as ``sector slave``."""

from __future__ import annotations

from ..cli.servers import slave

if __name__ == "__main__":
    slave(prog_name="python -m sector.slave")
