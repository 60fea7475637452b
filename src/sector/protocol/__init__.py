"""Sans-IO protocol shared by the blocking client and the asyncio servers.

Nothing here touches a socket: framing turns messages into bytes and back,
``paths`` normalises Sector paths, ``tokens`` signs and checks the short-lived
capabilities the master hands out for data connections, and ``messages`` names
the operations and the shape of replies. Because it is pure, it is tested and
fuzzed without any server running.
"""
