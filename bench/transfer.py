"""The first, small transfer benchmark: upload and download a 200 MB file beside ``cp``.

``python bench/transfer.py`` (or ``python -m bench.transfer``) starts a local
cluster under /var/tmp, then for each run copies the file with ``cp`` + fsync
(the baseline, measured now, on the same disk) and uploads and downloads it
through Sector, and prints MB/s with the ratio to ``cp``. The full suite is
``python -m bench``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines import cp_with_fsync
from bench.common import MB, can_drop_caches, log, make_file, median
from bench.sector_runs import cluster, download, upload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="file size in MB (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (default 3), medians")
    parser.add_argument("--work-parent", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args(argv)
    size = args.size_mb * MB
    drop = can_drop_caches()
    work = Path(tempfile.mkdtemp(prefix="sector-transfer-", dir=args.work_parent))
    try:
        source = work / "source.bin"
        make_file(source, size)
        cp_s, up_s, down_s = [], [], []
        with cluster(work / "cluster") as running:
            client = running.connect()
            try:
                for run in range(1, args.runs + 1):
                    log(f"run {run}/{args.runs}")
                    cp_s.append(cp_with_fsync(source, work / "copy.bin", drop)[0])
                    up_s.append(upload(client, running, source, "/transfer.bin", drop)[0])
                    down_s.append(
                        download(client, running, "/transfer.bin", work / "out.bin", drop)[0]
                    )
            finally:
                client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cp = size / median(cp_s) / MB
    print(f"{args.size_mb} MB file, median of {args.runs} runs, page cache "
          f"{'dropped before each step' if drop else 'NOT dropped (not root)'}")
    print(f"  {'cp + fsync (baseline)':<24}{cp:>9.1f} MB/s")
    for name, seconds in (("Sector upload", up_s), ("Sector download + fsync", down_s)):
        rate = size / median(seconds) / MB
        print(f"  {name:<24}{rate:>9.1f} MB/s   {rate / cp:.2f}x cp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
