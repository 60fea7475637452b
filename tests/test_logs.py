"""Server logs: one line per event, whatever a message or a traceback holds."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from sector.logs import OneLineFormatter, RecentEvents, python_level, setup_logging

LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|ERROR) sector\.test: .*")


@pytest.fixture
def log_file(tmp_path: Path):
    path = tmp_path / "logs" / "test.log"
    setup_logging(path, 3)
    yield path
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def test_a_newline_in_a_message_cannot_start_a_forged_line(log_file: Path) -> None:
    logging.getLogger("sector.test").info("user %s logged in", "eve\n2026-01-01 INFO root")
    [line] = log_file.read_text().splitlines()
    assert LINE.fullmatch(line)
    assert line.endswith(r"user eve\n2026-01-01 INFO root logged in")


def test_a_traceback_is_folded_onto_its_events_line(log_file: Path) -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger("sector.test").exception("request failed")
    [line] = log_file.read_text().splitlines()
    assert LINE.fullmatch(line)
    assert "request failed | Traceback (most recent call last): | " in line
    assert line.endswith("ValueError: bad | thing")


def test_levels_follow_sectors_log_level() -> None:
    assert python_level(0) > logging.CRITICAL
    assert python_level(1) == python_level(4) == logging.INFO
    assert python_level(5) == python_level(9) == logging.DEBUG


def test_the_formatter_is_the_same_for_file_and_stderr(log_file: Path) -> None:
    setup_logging(log_file, 3, console=True)
    handlers = logging.getLogger().handlers
    assert len(handlers) == 2
    assert all(isinstance(h.formatter, OneLineFormatter) for h in handlers)


def test_recent_events_keep_the_latest_warnings_and_errors_newest_first() -> None:
    recent = RecentEvents(capacity=3)
    logger = logging.getLogger("sector.test.recent")
    logger.addHandler(recent)
    logger.setLevel(logging.INFO)
    try:
        logger.info("not kept: below WARNING")
        for n in range(5):
            logger.warning("warning %d", n)
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("failed\nbadly")
    finally:
        logger.removeHandler(recent)
    events = recent.events()
    assert [e.level for e in events] == ["ERROR", "WARNING", "WARNING"]  # a ring of 3
    assert [e.message for e in events[1:]] == ["warning 4", "warning 3"]
    assert events[0].logger == "sector.test.recent"
    # one line, as in the log file: the message's newline escaped, the traceback folded on
    assert events[0].message.startswith(r"failed\nbadly | Traceback (most recent call last): | ")
    assert events[0].message.endswith("ValueError: bad | thing")
