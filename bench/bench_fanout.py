"""Fan-out: N WebSocket clients x 10 of 200 symbols, every symbol updated once a second.

Measures publish -> client receive latency (p50, p99, max), messages lost, server CPU and
memory per connection, for the push hub (consumers.RealtimeConsumer under Daphne, one layer
message per batch, local fan-out) against a bare Channels consumer (a layer group per symbol,
the Channels docs' way), each on the core and the pub/sub layer, in the same run.

Real processes: one Daphne, a publisher process (publish_batch per batch of 50 symbols, as
the price tasks do), and load-generator processes running `websockets` clients with token
auth. A scratch SQLite database under var/bench/ holds the bench user, token and assets.
Redis: REDIS_URL (its channel-layer and registry keys are deleted between runs), else the
embedded one.

    python -m bench.bench_fanout --clients 100,1000 --duration 20 --designs hub-core,bare-core
    make bench BENCH_ARGS=bench_fanout   (options from BENCH_FANOUT_ARGS)
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from bench.fanout.designs import BATCH_SIZE, DESIGNS, symbol_names
from bench.fanout.processes import BASE_DIR, VAR, prepare_database, raise_fd_limit
from bench.fanout.report import print_table
from bench.fanout.run import run_one


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default="100,1000,3000", help="comma list of client counts")
    parser.add_argument("--duration", type=float, default=20, help="seconds of publishing")
    parser.add_argument("--designs", default="hub-core,bare-core", help=f"comma list of {', '.join(DESIGNS)}")
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help="symbols per publish_batch, spread evenly over each second"
    )
    parser.add_argument("--loadgen-procs", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1, help="WEB_CONCURRENCY: Daphne processes on the port")
    parser.add_argument("--wave", type=int, default=40, help="concurrent handshakes (a bare Daphne's backlog is 50)")
    parser.add_argument("--drain", type=float, default=30, help="max seconds to wait for stragglers")
    args = parser.parse_args(argv if argv is not None else shlex.split(os.environ.get("BENCH_FANOUT_ARGS", "")))

    sys.path.insert(0, str(BASE_DIR))
    raise_fd_limit()
    if not os.environ.get("REDIS_URL"):
        from config.embedded import ensure_redis_url

        ensure_redis_url()
    db = VAR / "fanout.sqlite3"
    token = prepare_database(db, symbol_names(args.symbols))
    rows = []
    for clients in (int(c) for c in args.clients.split(",")):
        for design in args.designs.split(","):
            row = run_one(design, clients, args, db, token)
            rows.append(row)
            print(
                f"  {design} N={clients}: p99 {row['p99']:.0f} ms, lost {row['lost']}, CPU {row['cpu_pct']:.0f} %, "
                f"load generator CPU {row['loadgen_cpu_s']:.1f} s, closed by server {row['closed_by_server']}",
                flush=True,
            )
    print_table(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
