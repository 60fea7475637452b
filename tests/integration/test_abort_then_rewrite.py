"""A write aborted and then redone at once must not lose the redone version.

Found while building ``sector mount``: the master used to give the new lease
the aborted lease's version number, and the delete order it queued for the
aborted version (batched for ``master/links.py: DELETE_BATCH_DELAY``) reached
the slave after the new version was committed under the same number, and
removed it. Versions are now never issued twice (``Store.issue_version``).
"""

from __future__ import annotations

import time

from sector.client import Client
from sector.protocol.messages import RW, TRUNC, WRITE

#: Long enough for any delete order queued at the abort to reach the slave.
WATCH_SECONDS = 1.0
ATTEMPTS = 20


def test_a_rewrite_right_after_an_aborted_one_stays_readable(client: Client, workdir: str) -> None:
    # a race with the batched delete: try it often enough to lose it when it exists
    for attempt in range(ATTEMPTS):
        path = f"{workdir}/file{attempt}"
        with client.open(path, WRITE | TRUNC) as remote:
            remote.write(b"one")
        client.open(path, RW).abort()
        with client.open(path, RW) as remote:
            remote.seek(3)
            remote.write(b"two")
    deadline = time.monotonic() + WATCH_SECONDS
    while time.monotonic() < deadline:  # every read in the window must succeed
        for attempt in range(ATTEMPTS):
            with client.open(f"{workdir}/file{attempt}") as remote:
                assert remote.read() == b"onetwo"
