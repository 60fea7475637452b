"""The public API is documented, typed, and the README's reference matches the docstrings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import sector

from .api_reference import FAILURE_WORDS, README, SECTIONS, docstring, readme_block, render


@pytest.mark.parametrize(
    ("name", "function"),
    [(n, f) for _, members in SECTIONS for n, f in members()],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_public_function_says_what_it_does_on_failure(name: str, function) -> None:
    doc = docstring(function)
    assert doc, f"{name} has no docstring"
    assert FAILURE_WORDS.search(doc), f"{name}'s docstring does not say how it fails: {doc!r}"


def test_the_readme_reference_is_the_one_the_docstrings_give() -> None:
    assert readme_block(README.read_text()) == render(), (
        "README's API reference is stale: run `python -m tests.api_reference`"
    )


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert sector.__version__ == version("pysector")


def test_type_checkers_see_the_annotations(tmp_path: Path) -> None:
    mypy = pytest.importorskip("mypy.api")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sector\nfrom sector.client import Client\n"
        "reveal_type(sector.open)\nreveal_type(Client.locate)\n"
    )
    out, err, status = mypy.run(
        [str(probe), "--no-incremental", "--follow-imports=silent", "--ignore-missing-imports"]
    )
    assert "py.typed" not in out, out
    maybe = "(?:builtins\\.)?"
    assert re.search(rf"def \(path: {maybe}str, mode: {maybe}int =\) -> {maybe}int", out), out
    assert re.search(rf"list\[tuple\[{maybe}str, {maybe}int\]\]", out), out
