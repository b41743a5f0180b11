"""The fan-out benchmark's numbers: percentiles and the results table."""

from __future__ import annotations

from typing import Any


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'design':<12} {'N':>5} {'conn':>5} {'conn s':>6} {'expected':>9} {'lost':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'p99/hub':>7} {'CPU %':>6} {'KB/conn':>7} {'RSS MB':>7} {'late':>4}"
    )
    print(head)
    print("-" * len(head))
    hub_p99 = {r["clients"]: r["p99"] for r in rows if r["design"].startswith("hub-core")}
    for r in rows:
        ratio = r["p99"] / hub_p99[r["clients"]] if hub_p99.get(r["clients"]) else float("nan")
        print(
            f"{r['design']:<12} {r['clients']:>5} {r['connected']:>5} {r['connect_s']:>6.1f} {r['expected']:>9} "
            f"{r['lost']:>7} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f} {ratio:>7.1f} "
            f"{r['cpu_pct']:>6.0f} {r['kb_per_conn']:>7.1f} {r['rss_mb_end']:>7.1f} {r['late_batches']:>4}"
        )
