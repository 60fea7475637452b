"""Where the time goes: one metadata phase or a large transfer, profiled on every side.

``python -m bench.profile --phase stat`` starts a one-slave cluster, samples
the master and the slave with py-spy (``pip install py-spy``) while one client
runs the phase under cProfile, and prints the hottest functions of each
process (self and inclusive share of samples). Phases: create, stat, rename,
read, delete, ls, upload, download. The raw py-spy stacks stay in ``--out``
for flame graphs. Every optimisation kept in ``src/sector`` was chosen from
this output; the README's Performance section quotes it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from .common import MiB, log, make_file
from .metadata import PAYLOAD
from .sector_runs import cluster

PHASES = ("create", "stat", "rename", "read", "delete", "ls", "upload", "download")


def summarise(raw: Path, top: int) -> str:
    """Top functions of a py-spy ``--format raw`` (collapsed stacks) file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples; self%  incl%  function"]
    for frame, count in own.most_common(top):
        lines.append(f"  {100 * count / total:5.1f}  {100 * inclusive[frame] / total:5.1f}  "
                     f"{frame[:110]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=PHASES, default="stat")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size-mb", type=int, default=512, help="for upload/download")
    parser.add_argument("--out", type=Path, default=Path("/var/tmp/sector-profile"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sector-profile-", dir="/var/tmp"))
    try:
        with cluster(work / "cluster") as running:
            client = running.connect()
            try:
                return _profile(args, running, client, work)
            finally:
                client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _profile(args, running, client, work: Path) -> int:
    from sector.protocol.messages import WRITE

    names = [f"/p/f{i:06d}" for i in range(args.files)]
    data = b"x" * PAYLOAD
    client.mkdir("/p")
    source = work / "big.bin"
    if args.phase in ("upload", "download"):
        make_file(source, args.size_mb * MiB)
        if args.phase == "download":
            client.upload(source, "/big.bin")
    elif args.phase != "create":
        for name in names:
            with client.open(name, WRITE) as remote:
                remote.write(data)

    def workload() -> None:
        if args.phase == "create":
            for name in names:
                remote = client.open(name, WRITE)
                remote.write(data)
                remote.close()
        elif args.phase == "stat":
            for name in names:
                client.stat(name)
        elif args.phase == "rename":
            for name in names:
                client.move(name, name + ".r")
        elif args.phase == "read":
            for name in names:
                with client.open(name) as remote:
                    remote.read()
        elif args.phase == "delete":
            for name in names:
                client.rm(name)
        elif args.phase == "ls":
            for _ in range(50):
                client.ls("/p")
        elif args.phase == "upload":
            client.upload(source, "/big.bin")
        else:
            client.download("/big.bin", work / "out.bin")

    spies = {}
    for proc in running.processes:
        raw = args.out / f"{args.phase}-{proc.name}.txt"
        spies[proc.name] = (raw, subprocess.Popen(
            ["py-spy", "record", "--nonblocking", "-r", str(args.rate), "--format", "raw",
             "-o", str(raw), "-p", str(proc.popen.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # py-spy attaches asynchronously
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    workload()
    profiler.disable()
    elapsed = time.perf_counter() - started
    for _, spy in spies.values():
        spy.send_signal(signal.SIGINT)
    for _, spy in spies.values():
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
    count = 1 if args.phase in ("upload", "download") else (
        50 if args.phase == "ls" else args.files)
    print(f"{args.phase}: {count} operations in {elapsed:.2f} s = {count / elapsed:,.0f}/s")
    for name, (raw, _) in spies.items():
        print(f"\n== {name} (py-spy, {raw}) ==")
        print(summarise(raw, args.top) if raw.exists() else "  (py-spy wrote nothing)")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.top)
    log(f"client profile written to {args.out / (args.phase + '-client.txt')}")
    (args.out / f"{args.phase}-client.txt").write_text(text.getvalue())
    print("\n== client (cProfile, by own time) ==")
    print("\n".join(text.getvalue().splitlines()[:args.top + 12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
