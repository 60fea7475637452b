"""The benchmark suite must not rot: run it at tiny sizes and check every figure is there.

This is not a performance test (CI machines are noisy and the sizes are tiny);
it proves that ``python -m bench`` still runs end to end against a real
cluster and that each figure it reports stands beside a baseline and a ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--skip-peer",
            "--no-drop-caches",
            "--clients",
            "4",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    report = json.loads(out.read_text()) if out.exists() else {}
    assert done.returncode == 0, (report.get("skipped"), done.stderr[-3000:])
    assert "Sector benchmark" in done.stdout
    return report


@pytest.mark.timeout(240)
def test_every_figure_has_a_baseline_and_ratio(report: dict) -> None:
    assert report["failed"] == []
    assert report["figures"]
    for figure in report["figures"]:
        assert figure["value"] is not None, figure
        assert figure["baseline"], figure
        assert figure["baseline_value"], figure
        assert figure["ratio"] is not None, figure


@pytest.mark.timeout(240)
def test_all_parts_are_reported(report: dict) -> None:
    groups = {f["group"].split(" ")[0] for f in report["figures"]}
    expected = {
        "Large", "CPU", "Parallel", "fsspec,", "fsspec", "pandas,", "Small", "Namespace",
        "Replication",
    }  # fmt: skip
    assert expected <= groups
    baselines_by_metric = {f["metric"]: f["baseline"] for f in report["figures"]}
    assert baselines_by_metric["fs.cat_file MB/s"].startswith("sector download")
    assert baselines_by_metric["pd.read_parquet(sector://) s"] == "same file on local disk"
    metrics = {(f["group"], f["metric"]) for f in report["figures"]}
    for clients in ("1 client", "4 clients"):
        for phase in ("create", "stat", "list", "rename", "read", "delete"):
            assert (f"Small files, {clients}", phase) in metrics
    baselines = {f["baseline"] for f in report["figures"]}
    assert "cp + fsync, same file" in baselines
    assert "dd bs=4M conv=fsync, same file" in baselines  # the userspace writer's limit
    assert any(b.startswith("raw TCP") for b in baselines)
    assert report["context"]["page_cache_dropped"] is False
    assert "peer" not in report["skipped"] or "skip" in report["skipped"]["peer"].lower()


@pytest.mark.timeout(240)
def test_the_mount_stands_beside_upload_download_and_the_api(report: dict) -> None:
    if not os.path.exists("/dev/fuse"):
        assert "mount" in report["skipped"]
        return
    by_group: dict[str, dict[str, str]] = {}
    for figure in report["figures"]:
        by_group.setdefault(figure["group"], {})[figure["metric"]] = figure["baseline"]
    large = next(rows for group, rows in by_group.items() if group.startswith("`sector mount`"))
    assert large["cp into the mount MB/s"] == "sector upload, same run"
    assert large["cp out of the mount (+fsync) MB/s"] == "sector download (+fsync), same run"
    for clients in ("1 client", "4 clients"):
        rows = by_group[f"Small files through `sector mount`, {clients}"]
        assert set(rows) == {"create", "stat", "list", "rename", "read", "delete"}


def test_the_codec_benchmark_runs_and_compares(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import codec

    assert codec.main(["--quick"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("ratio") == 6  # four messages, ls as columns vs structs, gc
    assert "ls reply, 1,000 entries" in printed and "as columns (v2)" in printed


def test_the_cpu_per_operation_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import cpu

    assert cpu.main(["--files", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [
        "create",
        "stat",
        "ls",
        "read",
        "rename",
        "delete",
    ]


def test_the_dispatch_benchmark_runs_and_compares(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import dispatch

    assert dispatch.main(["--requests", "200", "--rounds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" ", 1)[0].strip() for line in lines[1:4]] == [
        "handler", "answer, metrics off", "answer"
    ]  # fmt: skip
    assert lines[4].startswith("instrumentation: ") and "x the baseline" in lines[4]
