"""The table a person reads: on the terminal (rich) and as Markdown for the README."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .common import Figure, Results


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def verdict(figure: Figure) -> str:
    if figure.target_ok is None:
        return ""
    return "yes" if figure.target_ok else "NO"


def ratio_text(figure: Figure) -> str:
    ratio = figure.ratio
    return "-" if ratio is None else f"{ratio:.2f}x"


def context_lines(results: Results) -> list[str]:
    ctx = results.context
    info = ctx.get("machine", {})
    lines = [
        f"machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores, "
        f"{info.get('memory_gib', '?')} GiB RAM, kernel {info.get('kernel', '?')}, "
        f"Python {info.get('python', '?')}; disk {info.get('disk', '?')}",
        f"load average at start {tuple(round(x, 2) for x in info.get('loadavg_start', ()))}, "
        f"at end {tuple(round(x, 2) for x in ctx.get('loadavg_end', ()))} "
        "(cores shared with other work: figures are noisy)",
        "page cache dropped before cold reads/copies: "
        + ("yes" if ctx.get("page_cache_dropped") else "NO (not root, or --no-drop-caches)"),
    ]
    raw = ctx.get("raw_tcp")
    if raw:
        lines.append(f"raw loopback TCP ({raw['tool']}): {raw['gbit_s']:.1f} Gbit/s "
                     f"= {fmt(raw['mb_s'])} MB/s")
    if "cp_fsync_mb_s" in ctx:
        lines.append(f"cp + fsync of the large file: {fmt(ctx['cp_fsync_mb_s'])} MB/s; "
                     f"cold sequential read (dd bs=1M): {fmt(ctx['cold_read_mb_s'])} MB/s")
    if "dd_fsync_mb_s" in ctx:
        lines.append(f"dd bs=4M conv=fsync of the large file: {fmt(ctx['dd_fsync_mb_s'])} MB/s "
                     "(a userspace writer's limit; cp may copy inside the kernel)")
    if "moosefs_dd_cold_read_mb_s" in ctx:
        lines.append("MooseFS cold read to /dev/null (dd bs=1M): "
                     f"{fmt(ctx['moosefs_dd_cold_read_mb_s'])} MB/s")
    lines.append(f"runs: {ctx.get('runs')} (medians); small files: {ctx.get('files')} x 1 KB; "
                 f"concurrent clients: {ctx.get('clients')} processes")
    return lines


def print_report(results: Results) -> None:
    console = Console(width=max(160, shutil.get_terminal_size((160, 40)).columns))
    table = Table(title="Sector benchmark: every figure beside a baseline from the same run",
                  show_lines=False)
    for column, justify in (("group", "left"), ("metric", "left"), ("Sector", "right"),
                            ("unit", "left"), ("baseline", "left"), ("baseline value", "right"),
                            ("ratio", "right"), ("target", "left"), ("met", "center")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    last = None
    for f in results.figures:
        if last is not None and f.group != last:
            table.add_section()
        table.add_row(f.group if f.group != last else "", f.metric, fmt(f.value), f.unit,
                      f.baseline, fmt(f.baseline_value), ratio_text(f), f.target, verdict(f))
        last = f.group
    console.print(table)
    for line in context_lines(results):
        console.print(f"  {line}")
    for line in results.notes:
        console.print(f"  note: {line}")
    for part, why in results.skipped.items():
        console.print(f"  [bold]{part}[/bold]: {why}")


def markdown(results: Results) -> str:
    out = ["| group | metric | Sector | baseline | baseline value | ratio | target | met |",
           "|---|---|--:|---|--:|--:|---|:-:|"]
    last = None
    for f in results.figures:
        group = f.group if f.group != last else ""
        out.append(f"| {group} | {f.metric} | {fmt(f.value)} {f.unit} | {f.baseline} | "
                   f"{fmt(f.baseline_value)} | {ratio_text(f)} | {f.target} | {verdict(f)} |")
        last = f.group
    out.append("")
    out += [f"- {line}" for line in context_lines(results)]
    out += [f"- {line}" for line in results.notes]
    out += [f"- {part}: {why}" for part, why in results.skipped.items()]
    return "\n".join(out) + "\n"


def write_markdown(results: Results, path: Path) -> None:
    path.write_text(markdown(results))
