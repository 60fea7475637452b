"""The wire contract lives in ``sector.protocol`` alone.

Servers and client only construct and match the message types; no op name is
spelt anywhere else, so that adding or renaming a message is one edit in
``protocol/`` and the type checker (or this test) finds every use. The CLI is
exempt: its command names are words for people, not the wire's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec

import sector
from sector.protocol import data, master, messages, tokens

SOURCE = Path(sector.__file__).parent
EXEMPT = ("protocol", "cli")


def wire_names() -> set[str]:
    """Every tag a message, reply or token claim travels under."""
    names: set[str] = set()
    pending: list[type] = [msgspec.Struct]
    while pending:
        cls = pending.pop()
        subclasses = cls.__subclasses__()
        pending.extend(subclasses)
        if cls.__module__.startswith("sector.protocol") and not subclasses:  # not a base
            tag = getattr(cls, "__struct_config__", None) and cls.__struct_config__.tag
            if isinstance(tag, str):
                names.add(tag)
    return names


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant, except in ``__all__`` (Python names:
    the PySector API has functions called ``ls`` and ``open``)."""
    tree = ast.parse(path.read_text(), str(path))
    exported = {
        id(constant)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        for constant in ast.walk(node.value)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in exported
    ]


def test_the_catalogue_is_complete() -> None:
    """The scan below knows every op: each vocabulary's tags are among the wire names."""
    names = wire_names()
    for vocabulary in (
        master.GREETINGS,
        master.CLIENT_REQUESTS,
        master.SLAVE_REPORTS,
        data.SLAVE_REQUESTS,
    ):
        assert set(vocabulary.by_tag) <= names
    assert {"read", "write", "admin", "receipt"} <= names  # token kinds
    assert messages.tag_of(tokens.Receipt) == "receipt"


def test_no_op_name_is_spelt_outside_the_protocol_package() -> None:
    names = wire_names()
    found = [
        f"{path.relative_to(SOURCE.parent)}:{line}: {value!r}"
        for path in sorted(SOURCE.rglob("*.py"))
        if path.relative_to(SOURCE).parts[0] not in EXEMPT
        for line, value in string_literals(path)
        if value in names
    ]
    assert found == [], "op names belong in sector.protocol:\n" + "\n".join(found)
