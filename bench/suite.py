"""The whole benchmark in one command: ``python -m bench`` (``--help`` for the knobs).

Order of a run: the raw limits (loopback TCP, ``cp`` with fsync, cold disk
read), Sector's large-file upload and download interleaved with the ``cp``
baseline run by run (so both see the same moment of a noisy machine), the
cost of replicas to a writer and the speed of repair (:mod:`.replication`),
parallel range reads, what checking every block costs and a download from two
replicas at once beside one stream, Sector through fsspec (pandas, ranges) beside its
baselines, the metadata phases on the local disk and on Sector with
one and with C clients, the namespace at scale, the MooseFS peer, then
``sector mount`` beside upload/download and beside MooseFS's mount, back to
back (``--only mount,peer`` runs just that). Each part that cannot run says
why in the output and in the JSON; a part that fails makes the exit status
non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import baselines, metadata, sector_runs
from .common import MiB, Results, can_drop_caches, log, machine, make_file
from .figures import build
from .report import print_report, write_markdown

HERE = Path(__file__).resolve().parent
ALL_PARTS = ("raw", "large", "repl", "integrity", "data", "meta", "ns", "peer", "mount")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (seconds, for CI): 8 MiB, 1 run, 40 files, 4,000 entries")
    parser.add_argument("--size-mb", type=int, help="large file size in MiB (default 1024)")
    parser.add_argument("--runs", type=int, help="repetitions, medians reported (default 3)")
    parser.add_argument("--files", type=int, help="small files per phase (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--streams", type=int, default=4, help="parallel ranges (default 4)")
    parser.add_argument("--ns-entries", type=int, help="namespace size (default 1,000,000)")
    parser.add_argument("--skip-peer", action="store_true", help="do not install/run MooseFS")
    parser.add_argument("--skip-mount", action="store_true",
                        help="do not measure through `sector mount` (the mount part)")
    parser.add_argument("--only", default="",
                        help="comma list of parts: " + ",".join(ALL_PARTS))
    parser.add_argument("--json", type=Path, help="write the JSON here (default bench/results/)")
    parser.add_argument("--work-parent", type=Path, default=Path("/var/tmp"),
                        help="where the work directory goes: a real disk, not tmpfs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-drop-caches", action="store_true",
                        help="never drop the page cache (the output then says so)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.size_mb = args.size_mb or (8 if quick else 1024)
    args.runs = args.runs or (1 if quick else 3)
    args.files = args.files or (40 if quick else 2000)
    args.ns_entries = args.ns_entries or (4_000 if quick else 1_000_000)
    args.per_dir = 100 if quick else 1000
    args.stats = 200 if quick else 5000
    args.listings = 20 if quick else 200
    args.tcp_bytes = (64 if quick else 4096) * MiB
    args.tcp_seconds = 1 if quick else 5
    args.parts = {p.strip() for p in args.only.split(",") if p.strip()} or set(ALL_PARTS)
    if args.skip_peer:
        args.parts.discard("peer")
    if args.skip_mount:
        args.parts.discard("mount")
    return args


class Suite:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.results = Results()
        self.m: dict = {}
        self.failed: list[str] = []
        self.drop = can_drop_caches() and not args.no_drop_caches
        self.work = Path(tempfile.mkdtemp(prefix="sector-bench-", dir=args.work_parent))
        self.source = self.work / "source.bin"
        self.size = args.size_mb * MiB

    def part(self, name: str, action) -> None:
        """Run one part; a failure is recorded and the run goes on to the next part."""
        started = time.perf_counter()
        try:
            action()
        except Exception as exc:
            traceback.print_exc()
            self.failed.append(name)
            self.results.skipped[name] = f"FAILED: {type(exc).__name__}: {exc}"
        log(f"{name}: {time.perf_counter() - started:.1f} s")

    def run(self) -> int:
        args = self.args
        self.results.context = {
            "machine": machine(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "page_cache_dropped": self.drop,
            "work_dir": str(self.work),
            "size_mib": args.size_mb,
            "runs": args.runs,
            "files": args.files,
            "clients": args.clients,
            "streams": args.streams,
            "ns_entries": args.ns_entries,
            "quick": args.quick,
        }
        self.results.note(
            "page cache: dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every cold "
            "read, cp, upload and download" if self.drop else
            "page cache: NOT dropped (not root, or --no-drop-caches): cold reads may come "
            "from memory"
        )
        try:
            if "mount" in args.parts:
                self.check_mount()
            if "peer" in args.parts:
                self.part("peer install", self.install_peer)
            if "raw" in args.parts or "large" in args.parts:
                self.part("raw TCP", self.raw_tcp)
            if args.parts & {"large", "repl", "integrity", "data", "peer", "mount"}:
                log(f"making a {args.size_mb} MiB random source file in {self.work}")
                make_file(self.source, self.size)
            if "large" in args.parts:
                self.part("large files", self.large)
            if "repl" in args.parts:
                self.part("replication", self.replication)
            if "integrity" in args.parts:
                self.part("integrity", self.integrity)
            if "data" in args.parts:
                self.part("fsspec and pandas", self.data)
            if "meta" in args.parts:
                self.part("TLS round-trip floor", self.tls_floor)
                self.part("metadata", self.metadata)
            if "ns" in args.parts:
                self.part("namespace", self.namespace)
            # MooseFS's own rows sit beside the API's (large, meta); with only the mount
            # part, MooseFS runs inside it, beside the mount
            if "peer" in args.parts and "peer" not in self.results.skipped and \
                    args.parts & {"large", "meta"}:
                self.part("peer", self.peer)
            if "mount" in args.parts:
                self.part("mount", self.mount)
        finally:
            if args.keep:
                log(f"kept {self.work}")
            else:
                shutil.rmtree(self.work, ignore_errors=True)
        self.results.context["loadavg_end"] = list(os.getloadavg())
        build(self.results, self.m, self.size)
        print_report(self.results)
        self.write()
        return 1 if self.failed else 0

    # ------------------------------------------------------------- parts

    def install_peer(self) -> None:
        from .moosefs import PeerUnavailable, install

        try:
            install()
        except PeerUnavailable as exc:
            self.results.skipped["peer"] = f"MooseFS skipped: {exc}"
            log(self.results.skipped["peer"])

    def check_mount(self) -> None:
        """Measure through ``sector mount`` only when FUSE is here (else say why not)."""
        from .mount import MountUnavailable, check

        try:
            check()
        except MountUnavailable as exc:
            self.args.parts.discard("mount")
            self.results.skipped["mount"] = f"sector mount skipped: {exc}"
            log(self.results.skipped["mount"])

    def raw_tcp(self) -> None:
        log("raw TCP stream over 127.0.0.1")
        self.m["raw_tcp"] = baselines.raw_tcp(self.args.tcp_bytes, self.args.tcp_seconds)

    def tls_floor(self) -> None:
        log("TLS request/reply round trips against a server that does nothing")
        self.m["tls_floor"] = baselines.tls_round_trips(self.work, self.args.stats)

    def large(self) -> None:
        self.m["large"] = sector_runs.large_files(
            self.work, self.source, self.size, self.args.runs, self.drop, self.args.streams
        )

    def replication(self) -> None:
        from .replication import measure

        self.m["replication"] = measure(
            self.work, self.source, self.size, self.args.runs, self.drop
        )

    def integrity(self) -> None:
        from .integrity import Unavailable, hashing_cost, two_replicas

        out: dict = {"hashing": hashing_cost(self.size)}
        self.m["integrity"] = out
        try:
            wait = 30.0 if self.args.quick else 60.0 + self.size / 10e6  # copies at >= 10 MB/s
            out["replicas"] = two_replicas(
                self.work, self.source, self.size, self.args.runs, self.drop, wait
            )
        except Unavailable as exc:
            self.results.skipped["two replicas"] = f"download from two replicas skipped: {exc}"
            log(self.results.skipped["two replicas"])

    def data(self) -> None:
        from .datastack import run

        self.m["data"] = run(
            self.work, self.source, self.size, self.args.runs, self.drop, self.args.quick
        )

    def phases_on_directory(self, parent: Path, prefix: str, label: str) -> dict:
        """The metadata phases on a mounted file system: {clients: [rates per run]}."""
        args = self.args
        rates: dict[str, list] = {}
        for run in range(args.runs):
            for clients in sorted({1, args.clients}):
                log(f"metadata run {run + 1}/{args.runs}: {label}, {clients} client(s)")
                directory = parent / f"{prefix}-{run}-{clients}"
                directory.mkdir()
                rates.setdefault(str(clients), []).append(
                    metadata.run_phases(
                        metadata.Target("local", str(directory)), clients, args.files
                    )
                )
                directory.rmdir()
        return rates

    def metadata(self) -> None:
        """The phases on the local disk, then on Sector in each of metadata.STYLES, the
        styles taking turns run by run (so each sees the same moments of a noisy machine)."""
        args = self.args
        out: dict = {"local": {}, "cpu": {}}
        counts = sorted({1, args.clients})
        out["local"] = self.phases_on_directory(self.work, "meta-local", "local disk")
        with sector_runs.cluster(self.work / "sector-meta") as running:
            assert running.master_address is not None
            host, port = running.master_address
            servers = sector_runs.server_pids(running)
            setup = running.connect()
            try:
                for run in range(args.runs):
                    for clients in counts:
                        for style in metadata.STYLES:
                            log(f"metadata run {run + 1}/{args.runs}: {style}, "
                                f"{clients} client(s)")
                            directory = f"/meta/{style}-{run}-{clients}"
                            setup.mkdir(directory)
                            target = metadata.Target(style, directory, host, port,
                                                     str(running.layout.cert), servers)
                            rates, cpu = metadata.measure_phases(target, clients, args.files)
                            out.setdefault(style, {}).setdefault(str(clients), []).append(rates)
                            out["cpu"].setdefault(style, {}).setdefault(
                                str(clients), []).append(cpu)
            finally:
                setup.close()
        self.m["meta"] = out

    def namespace(self) -> None:
        args = self.args
        self.m["namespace"] = sector_runs.namespace_scale(
            self.work, args.ns_entries, args.per_dir, args.stats, args.listings
        )

    def mount(self) -> None:
        from .mount import measure

        args = self.args
        self.m["mount"] = measure(
            self.work, self.source, args.runs, self.drop, args.clients, args.files,
            peer="peer" in args.parts and "peer" not in self.results.skipped,
            skipped=self.results.skipped,
        )

    def peer(self) -> None:
        from .moosefs import MooseFS, PeerUnavailable

        args = self.args
        peer = MooseFS(self.work / "moosefs")
        try:
            log("starting MooseFS on 127.0.0.1")
            peer.start()
        except PeerUnavailable as exc:
            self.results.skipped["peer"] = f"MooseFS skipped: {exc}"
            log(self.results.skipped["peer"])
            return
        try:
            out: dict = {"write_s": [], "read_s": [], "dd_read_s": [], "cpu_write": [],
                         "cpu_read": [], "meta": {}}
            if self.source.exists():
                for run in range(args.runs):
                    log(f"MooseFS large file run {run + 1}/{args.runs}")
                    target = peer.mount / "big.bin"
                    seconds, used = baselines.timed_cp(self.source, target, self.drop, peer.pids)
                    out["write_s"].append(seconds)
                    out["cpu_write"].append(used)
                    local = self.work / "moosefs-out.bin"
                    seconds, used = baselines.timed_cp(target, local, self.drop, peer.pids)
                    local.unlink()
                    out["read_s"].append(seconds)
                    out["cpu_read"].append(used)
                    out["dd_read_s"].append(baselines.cold_read(target, self.drop))
                    target.unlink()
            out["meta"] = self.phases_on_directory(peer.mount, "meta", "MooseFS")
            if self.source.exists() and "repl" in args.parts:
                log("MooseFS: a second chunkserver, goal 2")
                peer.add_chunkserver()
                folder = peer.mount / "goal2"
                folder.mkdir()
                peer.set_goal(folder, 2)
                out["write_goal2_s"] = []
                for run in range(args.runs):
                    log(f"MooseFS goal 2 large file run {run + 1}/{args.runs}")
                    seconds, _ = baselines.timed_cp(
                        self.source, folder / "big.bin", self.drop, peer.pids
                    )
                    out["write_goal2_s"].append(seconds)
                    (folder / "big.bin").unlink()
            out["non_loopback_sockets"] = peer.check_loopback()
            self.m["moosefs"] = out
        finally:
            peer.stop()

    # ------------------------------------------------------------- output

    def write(self) -> None:
        payload = {
            "context": self.results.context,
            "figures": [f.as_dict() for f in self.results.figures],
            "notes": self.results.notes,
            "skipped": self.results.skipped,
            "failed": self.failed,
            "measurements": self.m,
        }
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.args.json or HERE / "results" / f"{stamp}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1, default=str))
        log(f"figures written to {path}")
        if not self.args.quick and not self.args.json and not self.failed and \
                self.args.parts == set(ALL_PARTS) - (
                    {"peer"} if self.args.skip_peer else set()) - (
                    {"mount"} if self.args.skip_mount else set()):
            (HERE / "latest.json").write_text(json.dumps(payload, indent=1, default=str))
            write_markdown(self.results, HERE / "latest.md")
            log(f"latest summary written to {HERE / 'latest.json'} and latest.md")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return Suite(args).run()


if __name__ == "__main__":
    sys.exit(main())
