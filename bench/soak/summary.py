"""A finished run's figures from its records (var/soak/<time>/: raw.json from the soak
process, clients.json from the clients, web.log) and the database's ground truth."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.soak import analysis, report, truth

RUN_LINE = re.compile(r"^refresh run (\d+):")
SEND_LINE = "Sending due task refresh-prices"


def log_records(log: Path, needle: str) -> list[tuple[float, dict[str, Any]]]:
    """The JSON log records (production's LOG_FORMAT) whose message holds `needle`, with
    their time as epoch seconds."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if needle not in line or not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
            found.append((datetime.strptime(record["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp(), record))
        except (ValueError, KeyError):
            continue
    return found


def hub_resyncs(log: Path) -> list[float]:
    """When a hub re-sent its subscribers snapshots (consumers/hub.py's log line)."""
    return sorted(t for t, _ in log_records(log, "re-sent"))


def run_tasks(log: Path) -> dict[int, str]:
    """Refresh run id -> the Celery task id that dispatched it (tasks/prices.py's line)."""
    found = {}
    for _, record in log_records(log, "refresh run "):
        match = RUN_LINE.match(str(record.get("message", "")))
        if match and record.get("task_id"):
            found[int(match.group(1))] = str(record["task_id"])
    return found


def beat_sends(log: Path, *, start: float, end: float) -> int:
    return sum(1 for t, _ in log_records(log, SEND_LINE) if start <= t <= end)


def soak_summary(run_dir: Path) -> dict[str, Any]:
    raw = json.loads((run_dir / "raw.json").read_text())
    records: list[dict[str, Any]] = json.loads((run_dir / "clients.json").read_text())
    t0, end, symbols, events = raw["started"], raw["ended"], raw["symbols"], raw["events"]
    interval = raw["options"]["interval"]
    changes = truth.stored_changes(symbols=symbols, start=t0, end=end)
    published = {(s, q) for s, q in raw["tap"]["published"]}
    resyncs = sorted(raw["tap"]["resyncs"] + hub_resyncs(run_dir / "web.log"))
    names = ("worker", "web", "beat", "redis")
    return {
        **{
            k: raw[k]
            for k in ("options", "started", "ended", "web_concurrency", "web_command", "load_before", "load_after")
        },
        "clients": len(records),
        "clients_connected": sum(1 for r in records if r["connections"]),
        "kills": {n: sum(1 for e in events if e["kind"] == "kill" and e["name"] == n) for n in names},
        "unplanned_exits": [e for e in events if e["kind"] == "exit"],
        "events": events,
        "stored_rows": truth.stored_rows(symbols=symbols, start=t0, end=end),
        "publication": analysis.publication(changes=changes, published=published),
        "tap": {k: raw["tap"][k] for k in ("batches", "resyncs", "outages")},
        "hub_resyncs": resyncs,
        "delivery": analysis.deliveries(
            clients=records, changes=changes, published=published, resyncs=resyncs, end=end
        ),
        "cycles": truth.cycles(
            start=t0,
            end=end,
            interval=interval,
            run_tasks=run_tasks(run_dir / "worker.log"),
            sends=beat_sends(run_dir / "beat.log", start=t0, end=end),
        ),
        "resync": analysis.resync_times(clients=records, events=events),
        "gaps": analysis.gaps(records),
        # "Minute 2 of 10": a fifth into the run, so a short run reports the same shape.
        "memory": report.memory(raw["memory_samples"], at=t0 + (end - t0) / 5, end=end),
        "memory_samples": raw["memory_samples"],
        "logs": str(run_dir),
    }
