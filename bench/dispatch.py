"""What the master's one dispatch point costs per request, in-process (no sockets, no TLS).

``python -m bench.dispatch`` times ``stat`` of an existing file three ways on a
real :class:`~sector.master.server.MasterServer` (its SQLite store in a
temporary directory), best of several rounds, in microseconds of CPU per request:

* ``handler``: the handler alone, looked up in the dispatch table - the floor;
* ``answer, metrics off``: ``MasterServer.answer`` with the metrics' counting
  replaced by a no-op - the baseline, from the same run;
* ``answer``: as shipped, timing and counting every request for ``/metrics``.

The last two lines' difference is what instrumentation costs a request, and
their ratio is printed. ``python -m bench.cpu`` shows the same request's whole
cost in the master process (TLS, the event loop, the reply's write) - about
78 µs here - to put it in proportion.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sector import certs
from sector.config import MasterSettings
from sector.master.server import MasterServer
from sector.master.sessions import Session
from sector.master.users import User
from sector.protocol.master import Stat


def best_per_call(call: Callable[[], object], count: int, rounds: int) -> float:
    """Microseconds of CPU per call, best of ``rounds`` rounds of ``count`` calls.

    CPU time of this process, not wall time: on a shared machine the time other
    processes hold the core would otherwise be charged to whatever ran then.
    """
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(count):
            call()
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__)
    parser.add_argument("--requests", type=int, default=50_000, help="per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sector-dispatch-"))
    try:
        conf = work / "conf"
        conf.mkdir()
        cert, key = conf / "master_node.cert", conf / "master_node.key"
        certs.create(cert, key)  # the master is its slaves' certificate authority
        settings = MasterSettings(conf_dir=conf, home=work / "master", cert=cert, key=key)
        master = MasterServer(settings)
        with master.store.transaction():
            master.files.namespace.create_file("/bench/file", master.store.allocate_id(), 1, 1, "")
        session = Session(User("bench", "", read=["/"]), "127.0.0.1")
        request = Stat("/bench/file")
        handler = master.client_ops[Stat]
        assert master.answer(session, request).entry.name == "file"

        shipped = master.metrics.answered

        def answer_without_metrics() -> object:
            master.metrics.answered = lambda *_: None  # type: ignore[method-assign]
            try:
                return best_per_call(lambda: master.answer(session, request), args.requests, 1)
            finally:
                master.metrics.answered = shipped  # type: ignore[method-assign]

        ways: dict[str, Callable[[], float]] = {
            "handler": lambda: best_per_call(lambda: handler(session, request), args.requests, 1),
            "answer, metrics off": answer_without_metrics,  # type: ignore[dict-item]
            "answer": lambda: best_per_call(
                lambda: master.answer(session, request), args.requests, 1
            ),
        }
        # rounds interleave the three, so a neighbour's load on a shared machine
        # falls on all of them alike; the best round of each is kept
        best = dict.fromkeys(ways, float("inf"))
        for _ in range(args.rounds):
            for name, way in ways.items():
                best[name] = min(best[name], way())
        floor, off, on = best.values()
        master.store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'stat of one file':28} {'µs/request':>10}")
    print(f"{'handler':28} {floor:10.2f}")
    print(f"{'answer, metrics off':28} {off:10.2f}")
    print(f"{'answer':28} {on:10.2f}")
    print(f"instrumentation: {on - off:+.2f} µs per request ({on / off:.3f}x the baseline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
