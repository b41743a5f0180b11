"""The soak's table and its JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def memory(samples: list[dict[str, Any]], *, at: float, end: float) -> dict[str, dict[str, Any]]:
    """Each process's resident memory (its whole tree) in the first sample at or after
    `at` and the last one before `end`, and whether it was the same incarnation."""
    first = next((s for s in samples if s["t"] >= at), None)
    last = next((s for s in reversed(samples) if s["t"] <= end), None)
    if first is None or last is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name in first["rss_kb"]:
        a, b = first["rss_kb"][name], last["rss_kb"].get(name, 0)
        out[name] = {
            "start_mb": a / 1024,
            "end_mb": b / 1024,
            "growth_pct": 100.0 * (b - a) / a if a else float("nan"),
            "same_process": first["pid"][name] == last["pid"].get(name),
            "peak_mb": max((s["rss_kb"].get(name, 0) for s in samples if at <= s["t"] <= end), default=0) / 1024,
            # Every process is killed every few minutes, so the same incarnation rarely spans
            # the run: compare the peaks of the incarnations alive in the first and the last
            # fifth of [at, end] as well (state a restart does not reset, e.g. in Redis).
            "peak_first_mb": _peak(samples, name, at, at + (end - at) / 5) / 1024,
            "peak_last_mb": _peak(samples, name, end - (end - at) / 5, end) / 1024,
        }
    return out


def _peak(samples: list[dict[str, Any]], name: str, start: float, end: float) -> int:
    return max((s["rss_kb"].get(name, 0) for s in samples if start <= s["t"] <= end), default=0)


def print_table(result: dict[str, Any]) -> None:
    d, p, c, r, g = result["delivery"], result["publication"], result["cycles"], result["resync"], result["gaps"]
    rows = [
        ("clients connected / asked", f"{result['clients_connected']} / {result['clients']}"),
        (
            "kills (worker/web/beat/redis)",
            " / ".join(str(result["kills"].get(n, 0)) for n in ("worker", "web", "beat", "redis")),
        ),
        ("unplanned exits", str(len(result["unplanned_exits"]))),
        (
            "prices stored (changed) / published",
            f"{p['stored_changes']} / {p['published']} ({p['unpublished']} never published)",
        ),
        ("owed to clients / delivered / covered", f"{d['owed']} / {d['delivered']} / {d['covered']}"),
        (
            "missing (superseded / never)",
            f"{d['missing']} ({d['missing_superseded']} / {d['missing_never']}) over {d['missing_quotes']} quotes",
        ),
        ("cycles run / beat sends / ticks", f"{c['runs']} / {c['beat_sends']} / {c['expected']}"),
        (
            "duplicate cycles (same send / at once / excess)",
            f"{c['duplicates']} ({len(c['same_send'])} / {len(c['overlaps'])} / {c['excess_over_sends']}); "
            f"unfinished {len(c['unfinished'])}, back to back {len(c['close'])}",
        ),
        (
            "resync after web back: max / p99 / >5 s",
            f"{r['max_s']:.1f} s / {r['p99_s']:.1f} s / {r['over_5s']} (unresynced {r['unresynced']})",
        ),
        ("  of which backoff max / server max", f"{r['reconnect_wait_max_s']:.1f} s / {r['server_max_s']:.1f} s"),
        ("longest gap per client: p50 / p99 / max", f"{g['p50_s']:.1f} s / {g['p99_s']:.1f} s / {g['max_s']:.1f} s"),
        ("seq gaps seen by clients", str(g["seq_gaps"])),
        ("failed reconnect attempts", f"{g['failed_handshakes']} {g['failure_kinds']}"),
    ]
    for name, mem in result["memory"].items():
        same = "same process" if mem["same_process"] else "restarted between"
        rows.append(
            (
                f"RSS {name} min 2 -> end",
                f"{mem['start_mb']:.0f} -> {mem['end_mb']:.0f} MB ({mem['growth_pct']:+.0f} %, {same}); "
                f"peak first / last fifth {mem['peak_first_mb']:.0f} / {mem['peak_last_mb']:.0f} MB",
            )
        )
    rows.append(("load average before / after", f"{result['load_before']} / {result['load_after']}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str))
