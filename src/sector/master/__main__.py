"""``python -m sector.master --conf DIR`` (also ``sector master``)."""

from __future__ import annotations

import argparse
import sys

from .run import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sector-master", description=__doc__)
    parser.add_argument("--conf", required=True, help="Sector configuration directory")
    parser.add_argument("--home", help="where metadata and logs live (default: DATA_DIRECTORY)")
    parser.add_argument("--port", type=int, help="override SECTOR_PORT (0: any free port)")
    args = parser.parse_args(argv)
    return run(args.conf, args.home, args.port)


if __name__ == "__main__":
    sys.exit(main())
