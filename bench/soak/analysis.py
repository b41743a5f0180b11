"""The soak's comparisons: stored vs published vs delivered per client, resync times after
each web restart, each client's longest silence. Pure functions over the records.

When is a stored price owed to a client, and when is it accounted for (docs/soak.md):
- owed: the client's subscription to the symbol was acknowledged at or before the quote's
  second and the same connection was still open a second later (the batch is stored and
  published within that second in the steady state);
- delivered: the client received an asset_update with that symbol and last_updated;
- covered: otherwise, a snapshot of the symbol with a last_updated at or after it stood in
  for it: the first subscribe snapshot after that connection closed, when it closed within
  WINDOW of the quote (the contract's "a client that was disconnected gets a snapshot on
  return"); a subscribe snapshot on the same connection within WINDOW (a resubscribe after a
  seq gap); or an update received within WINDOW of a hub's resync started within WINDOW of
  the quote;
- missing: neither. Split into "superseded" (a later price of the symbol did reach the
  client by an ordinary update, so it shows the latest value but skipped this one) and
  "never" (nothing at or after it arrived)."""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

WINDOW = 5.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _holding(client: dict[str, Any], symbol: str, q: int, end: float) -> dict[str, Any] | None:
    """The connection subscribed to `symbol` when the quote of second `q` was stored."""
    for conn in client["connections"]:
        ack = conn["acks"].get(symbol)
        close = conn["close"] if conn["close"] is not None else end
        if ack is not None and ack <= q and close >= q + 1:
            return conn
    return None


def _covered(client: dict[str, Any], conn: dict[str, Any], symbol: str, q: int, resyncs: list[float]) -> bool:
    """A snapshot stood in for the quote: the first one after the connection closed within
    WINDOW of the quote (the snapshot on return), one on the same connection within WINDOW
    (a resubscribe after a seq gap), or an update received within WINDOW of a hub's resync
    that started within WINDOW of the quote."""
    close = conn["close"]
    returned = close is not None and close <= q + WINDOW
    first_after_close = True
    for t, s, lu in client["snapshots"]:
        if s != symbol:
            continue
        if q <= t <= q + WINDOW and lu >= q:
            return True
        if returned and t >= close and first_after_close:
            first_after_close = False
            if lu >= q:
                return True
    received = client["received"].get(symbol, [])
    for r in resyncs[bisect.bisect_left(resyncs, q) :]:
        if r > q + WINDOW:
            break
        if any(lu >= q and r <= t <= r + WINDOW for lu, t in received):
            return True
    return False


def deliveries(
    *, clients: list[dict[str, Any]], changes: dict[str, list[int]], published: set[tuple[str, int]],
    resyncs: list[float], end: float,
) -> dict[str, Any]:  # fmt: skip
    owed = delivered = covered = superseded = never = 0
    missing_examples: list[dict[str, Any]] = []
    missing_quotes: Counter[tuple[str, int]] = Counter()
    for index, client in enumerate(clients):
        for symbol in client["symbols"]:
            got = dict(client["received"].get(symbol, []))
            latest_got = max(got, default=0)
            for q in changes.get(symbol, []):
                conn = _holding(client, symbol, q, end)
                if conn is None:
                    continue
                owed += 1
                if q in got:
                    delivered += 1
                elif _covered(client, conn, symbol, q, resyncs):
                    covered += 1
                else:
                    later = latest_got > q
                    superseded += later
                    never += not later
                    missing_quotes[(symbol, q)] += 1
                    if len(missing_examples) < 20:
                        example = {"client": index, "symbol": symbol, "quoted_at": q}
                        missing_examples.append({**example, "published": (symbol, q) in published, "superseded": later})
    return {
        "owed": owed,
        "delivered": delivered,
        "covered": covered,
        "missing": superseded + never,
        "missing_superseded": superseded,
        "missing_never": never,
        "missing_quotes": len(missing_quotes),
        "missing_quotes_unpublished": sum(1 for key in missing_quotes if key not in published),
        "missing_by_quote": sorted(
            ([s, q, n, (s, q) in published] for (s, q), n in missing_quotes.items()), key=lambda row: row[1]
        ),
        "missing_examples": missing_examples,
    }


def publication(*, changes: dict[str, list[int]], published: set[tuple[str, int]]) -> dict[str, Any]:
    stored = {(s, q) for s, qs in changes.items() for q in qs}
    unpublished = sorted(stored - published, key=lambda key: key[1])
    return {
        "stored_changes": len(stored),
        "published": len(stored & published),
        "unpublished": len(unpublished),
        "unpublished_list": [list(key) for key in unpublished],
        "published_not_stored": len({k for k in published if k[0] in changes} - stored),
    }


def resync_times(*, clients: list[dict[str, Any]], events: list[dict[str, Any]]) -> dict[str, Any]:
    """For each web restart: from the web port answering again to each client's last
    resubscribe snapshot on its first connection opened after the kill."""
    per_restart: list[dict[str, Any]] = []
    all_times: list[float] = []
    # Split of each time: the client's own backoff until its handshake succeeded, and the
    # server's part, from the `connection` message to the last snapshot.
    waits: list[float] = []
    serves: list[float] = []
    kills = [e for e in events if e["name"] == "web" and e["kind"] in ("kill", "exit")]
    backs = [e["at"] for e in events if e["name"] == "web" and e["kind"] == "back"]
    for kill in kills:
        back = next((b for b in backs if b > kill["at"]), None)
        if back is None:
            continue
        times: list[float] = []
        unresynced = 0
        for client in clients:
            conn = next((c for c in client["connections"] if c["open"] >= kill["at"]), None)
            if conn is None:
                unresynced += 1
                continue
            close = conn["close"] if conn["close"] is not None else float("inf")
            first: dict[str, float] = {}
            for t, s, _lu in client["snapshots"]:
                if conn["open"] <= t < close:
                    first.setdefault(s, t)
            if set(first) >= set(client["symbols"]):
                times.append(max(first.values()) - back)
                waits.append(conn["open"] - back)
                serves.append(max(first.values()) - conn["open"])
            else:
                unresynced += 1
        all_times.extend(times)
        per_restart.append(
            {
                "killed_at": kill["at"],
                "back_at": back,
                "down_s": back - kill["at"],
                "clients": len(times),
                "unresynced": unresynced,
                "p50_s": percentile(times, 0.5),
                "max_s": max(times, default=float("nan")),
                "over_5s": sum(1 for t in times if t > 5),
            }
        )
    return {
        "restarts": per_restart,
        "max_s": max(all_times, default=float("nan")),
        "p99_s": percentile(all_times, 0.99),
        "over_5s": sum(1 for t in all_times if t > 5),
        "unresynced": sum(r["unresynced"] for r in per_restart),
        "reconnect_wait_p99_s": percentile(waits, 0.99),
        "reconnect_wait_max_s": max(waits, default=float("nan")),
        "server_p99_s": percentile(serves, 0.99),
        "server_max_s": max(serves, default=float("nan")),
    }


def gaps(clients: list[dict[str, Any]]) -> dict[str, Any]:
    longest = [c["longest_gap"] for c in clients]
    return {
        "p50_s": percentile(longest, 0.5),
        "p99_s": percentile(longest, 0.99),
        "max_s": max(longest, default=float("nan")),
        "seq_gaps": sum(c["seq_gaps"] for c in clients),
        "never_connected": sum(1 for c in clients if not c["connections"]),
        "failed_handshakes": sum(len(c.get("failures", [])) for c in clients),
        "failure_kinds": dict(Counter(what.split(":")[0] for c in clients for _, what in c.get("failures", []))),
    }
