"""The master's conversation: what a login tells the client about the user's rights."""

from __future__ import annotations

import msgspec

from sector.protocol.master import Login, LoginReply, Rights
from sector.protocol.messages import replies_to


def test_rights_are_the_roots_of_the_users_permissions() -> None:
    rights = Rights(read=["/data"], write=["/data/out", "/home/u"])
    assert rights.can_read("/data/in/x") and rights.can_read("/home/u")
    assert rights.can_write("/data/out/x") and not rights.can_write("/data/in")
    assert not rights.can_read("/database") and not rights.can_write("/home/user")
    assert Rights(admin=True).can_write("/anything")
    assert not Rights().can_read("/")


def test_an_unreadable_directory_leads_only_to_the_roots_below_it() -> None:
    rights = Rights(read=["/data/in", "/home/u"], write=["/data/out"])
    assert rights.leads_to("/") == ["data", "home"]
    assert rights.leads_to("/data") == ["in", "out"]
    assert rights.leads_to("/data/in") == []  # readable: listed as it is
    assert rights.leads_to("/dat") == [] and rights.leads_to("/home/user") == []
    assert Rights(read=["/"]).leads_to("/") == [] and Rights(admin=True).leads_to("/x") == []


def test_a_login_reply_carries_the_rights_and_an_older_one_none() -> None:
    reply = LoginReply("u", Rights(["/r"], ["/w"]))
    decoded = replies_to(Login).decode(msgspec.msgpack.encode(reply))
    assert decoded == reply and decoded.rights.can_write("/w/x")
    older = msgspec.msgpack.encode(["login", "u"])  # a master from before rights were sent
    assert replies_to(Login).decode(older) == LoginReply("u", Rights())
