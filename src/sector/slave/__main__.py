"""``python -m sector.slave --conf DIR --data DIR`` (also ``sector slave``)."""

from __future__ import annotations

import argparse
import sys

from .run import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sector-slave", description=__doc__)
    parser.add_argument("--conf", required=True, help="Sector configuration directory")
    parser.add_argument("--data", help="override DATA_DIRECTORY")
    parser.add_argument("--master", help="override MASTER_ADDRESS (host:port)")
    parser.add_argument("--port", type=int, help="override SLAVE_PORT (0: any free port)")
    args = parser.parse_args(argv)
    return run(args.conf, args.data, args.master, args.port)


if __name__ == "__main__":
    sys.exit(main())
