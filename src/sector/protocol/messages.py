"""The operations each connection speaks and the shape of every reply.

Requests are maps with an ``op`` key. Replies are maps with ``ok: True`` and
fields, or ``ok: False`` with ``code`` (a Sector error code), ``msg`` and,
where it helps the client pick the right exception, ``path`` and ``kind``.

Client -> master (TLS, one persistent connection per client)
    login{user, password}            -> {user}
    logout, ping
    stat{path}                       -> {entry}
    ls{path}                         -> {entries}
    mkdir{path}                      creates missing parents
    rm{path, recursive}
    move{src, dst}
    copy{src, dst}                   data copied slave-side
    open{path, mode}                 -> read grant or write grant (see below)
    close{lease, receipt}            commit a write; -> {entry}
    abort{lease}                     drop a write, keeping the old version
    sysinfo                          -> {master, slaves}
    fsck{path}                       slaves re-hash their copies -> {files, replicas, problems}
    shutdown{slave?}                 admin only: one slave, or every slave and the master

  read grant : {oid, version, size, checksum, token, replicas: [[host, port], ...]}
  write grant: {lease, oid, version, size, token, slave: [host, port]}

Client -> slave (plain TCP; every request proves itself with a token)
    read{token, offset, length}      -> {length} followed by that many raw bytes
                                     (without a token, inside a write session: the
                                     bytes written so far, for RW mode)
    write{token}                     start a write session (no reply: errors are
                                     sticky and reported by ``commit``)
    put{offset, length} + raw bytes  no reply
    commit                           -> {receipt, size, checksum}; the receipt is
                                     signed by the slave and handed to the master
                                     with ``close``
    abort                            no reply

Master -> slave (same port, admin token)
    delete{token, objects}           objects: [[oid, version], ...]
    copy{token, src, dst}            src/dst: [oid, version] -> {size, checksum}
    verify{token, objects}           -> {damaged: [[oid, version], ...], missing: [...]}
    shutdown{token}

Slave -> master (TLS, slave-initiated)
    register{slave_id, host, port, total, free, objects}  -> {key, heartbeat, delete}
                                     objects: [[oid, version, size, checksum], ...];
                                     delete: the reported objects that are stale
    heartbeat{free, total, stored, files}                  -> {}
"""

from __future__ import annotations

from typing import Any

from .framing import Message

# Open modes (Sector's SF_MODE) - an interface users know, so the numbers are kept.
READ = 1
WRITE = 2
RW = 3
TRUNC = 4
APPEND = 8
SECURE = 16
HIRELIABLE = 32
ALL_MODE_BITS = READ | WRITE | TRUNC | APPEND | SECURE | HIRELIABLE


def ok(**fields: Any) -> Message:
    return {"ok": True, **fields}


def fail(code: int, msg: str = "", path: str | None = None, kind: str | None = None) -> Message:
    reply: Message = {"ok": False, "code": code, "msg": msg}
    if path is not None:
        reply["path"] = path
    if kind is not None:
        reply["kind"] = kind
    return reply
