"""Reading iperf3's report: a run that failed must not pass for a measurement."""

from __future__ import annotations

import json

from bench.baselines import _received_bits_per_second


def test_the_receivers_rate_is_read_from_a_complete_report() -> None:
    report = {"end": {"sum_received": {"bits_per_second": 1.5e10}}}
    assert _received_bits_per_second(json.dumps(report)) == 1.5e10


def test_an_error_report_gives_no_rate() -> None:
    assert _received_bits_per_second(json.dumps({"error": "the server is busy"})) is None
    assert _received_bits_per_second(json.dumps({"end": {}})) is None
    assert _received_bits_per_second("not json") is None
