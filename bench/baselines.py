"""The machine's own limits, measured in the same run as Sector: loopback TCP and the disk.

The raw TCP stream uses iperf3 when it is installed and otherwise a minimal
Python sender/receiver (``sendall``/``recv_into`` on 4 MiB buffers, which
release the GIL, so Python adds little); the result says which one ran.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from .common import MB, CpuMeter, MiB, drop_caches, log

_RECEIVER = r"""
import socket, sys
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
buffer = memoryview(bytearray(4 * 1024 * 1024))
total = 0
while (n := conn.recv_into(buffer)):
    total += n
conn.sendall(str(total).encode())
conn.close()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def iperf3_stream(seconds: float) -> dict | None:
    """One iperf3 TCP stream over 127.0.0.1, or None when iperf3 is not installed."""
    if shutil.which("iperf3") is None:
        return None
    port = _free_port()
    server = subprocess.Popen(
        ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # the server needs a moment to listen: retry on "connection refused" (bounded)
        for _ in range(50):
            done = subprocess.run(
                ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                capture_output=True,
                text=True,
                timeout=seconds + 30,
                check=False,
            )
            bits = _received_bits_per_second(done.stdout) if done.returncode == 0 else None
            if bits is not None:
                return {"tool": "iperf3", "gbit_s": bits / 1e9, "mb_s": bits / 8 / MB}
            time.sleep(0.1)  # a bounded retry: the server may not be listening yet
        return None
    finally:
        server.kill()
        server.wait()


def _received_bits_per_second(output: str) -> float | None:
    """The receiver's rate from iperf3's JSON; None for a report without one.

    iperf3 can exit 0 with an error report (seen here when a test starts while
    the server still winds down the previous one), which has no ``sum_received``.
    """
    try:
        return float(json.loads(output)["end"]["sum_received"]["bits_per_second"])
    except (ValueError, KeyError, TypeError):
        return None


def python_stream(total: int) -> dict:
    """Send ``total`` bytes over loopback from this process to a receiver process."""
    receiver = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        block = memoryview(bytearray(4 * MiB))
        with socket.create_connection(("127.0.0.1", port)) as sock:
            started = time.perf_counter()
            remaining = total
            while remaining:
                piece = block[: min(remaining, len(block))]
                sock.sendall(piece)
                remaining -= len(piece)
            sock.shutdown(socket.SHUT_WR)
            received = int(sock.recv(64))
            elapsed = time.perf_counter() - started
        if received != total:
            raise RuntimeError(f"raw TCP receiver got {received} of {total} bytes")
        return {"tool": "python sendall/recv_into", "gbit_s": total * 8 / elapsed / 1e9,
                "mb_s": total / elapsed / MB}
    finally:
        receiver.kill()
        receiver.wait()


def raw_tcp(total: int, seconds: float) -> dict:
    result = iperf3_stream(seconds)
    if result is None:
        log("iperf3 not installed (or failed): using the Python sender/receiver")
        result = python_stream(total)
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cp_with_fsync(source: Path, target: Path, drop: bool) -> tuple[float, float]:
    """``cp`` then ``sync`` of the copy, from a cold source when ``drop``; (seconds, cpu)."""
    target.unlink(missing_ok=True)
    if drop:
        drop_caches()
    cpu = _children_cpu()
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    subprocess.run(["sync", str(target)], check=True)
    elapsed = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    target.unlink()
    os.sync()
    return elapsed, cpu


def dd_with_fsync(source: Path, target: Path, drop: bool) -> float:
    """``dd bs=4M conv=fsync`` of ``source`` from a cold cache when ``drop``: seconds.

    The userspace writer's limit beside ``cp``'s: ``cp`` may copy inside the
    kernel (``copy_file_range``), and a program that reads and writes through its
    own buffers, as a Sector slave and client do, cannot. On a VM whose disk was
    slower, issue 13 found dd at 260-308 MB/s where cp reached 464-538.
    """
    target.unlink(missing_ok=True)
    if drop:
        drop_caches()
    started = time.perf_counter()
    subprocess.run(
        ["dd", f"if={source}", f"of={target}", "bs=4M", "conv=fsync", "status=none"],
        check=True,
    )
    elapsed = time.perf_counter() - started
    target.unlink()
    os.sync()
    return elapsed


def timed_cp(source: Path, target: Path, drop: bool, pids: dict[str, int]):
    """``cp`` + ``sync`` of the copy from a cold source: (seconds, CPU seconds by process).

    For copies into and out of a mounted file system (MooseFS's, Sector's):
    ``pids`` are the file system's processes, whose CPU is measured too.
    """
    target.unlink(missing_ok=True)
    if drop:
        drop_caches()
    meter = CpuMeter(pids)
    meter.start()
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    subprocess.run(["sync", str(target)], check=True)
    elapsed = time.perf_counter() - started
    used = meter.stop()
    used.pop("client", None)
    return elapsed, used


def cold_read(source: Path, drop: bool) -> float:
    """Seconds for ``dd bs=1M`` of ``source`` to /dev/null after dropping caches."""
    if drop:
        drop_caches()
    started = time.perf_counter()
    subprocess.run(
        ["dd", f"if={source}", "of=/dev/null", "bs=1M", "status=none"], check=True
    )
    return time.perf_counter() - started


_ECHO_SERVER = r"""
import asyncio, sys
from pathlib import Path
from sector.lifecycle import run_loop
from sector.transport import server_tls_context

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)

async def main():
    loop = asyncio.get_running_loop()
    context = server_tls_context(Path(sys.argv[1]), Path(sys.argv[2]))
    server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=context)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.connect_read_pipe(asyncio.Protocol, sys.stdin)
    await asyncio.Event().wait()

run_loop(main(), fast=True)
"""


def tls_round_trips(work: Path, count: int) -> dict:
    """Request/reply round trips per second against a TLS server that does nothing.

    The floor under every metadata operation of one synchronous client: the
    same TLS setup, event loop (uvloop) and blocking client socket as Sector's
    master and client, with the server's work taken away. A 60-byte request
    is echoed back, about the size of a ``stat``.
    """
    from sector import certs
    from sector.transport import client_tls_context

    cert, key = work / "echo.cert", work / "echo.key"
    certs.create(cert, key)
    server = subprocess.Popen(
        [sys.executable, "-c", _ECHO_SERVER, str(cert), str(key)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with client_tls_context(cert).wrap_socket(raw, server_hostname="localhost") as sock:
            request = b"x" * 60
            started = time.perf_counter()
            for _ in range(count):
                sock.sendall(request)
                received = 0
                while received < len(request):
                    received += len(sock.recv(4096))
            elapsed = time.perf_counter() - started
    finally:
        server.kill()
        server.wait()
    return {"round_trips": count, "per_s": count / elapsed, "us": elapsed / count * 1e6}
