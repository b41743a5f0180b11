"""`make bench`: run each benchmark module in bench/ and print its table."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

# Run only by name (`python -m bench bench_soak --minutes 10`): a 10-minute chaos run.
OPT_IN = {"bench_soak"}


def main(argv: list[str]) -> int:
    # Names first, then options for a single named benchmark (`bench_soak --minutes 2`).
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    argv, options = argv[:split], argv[split:]
    names = argv or [
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_") and m.name not in OPT_IN
    ]
    if not names:
        print("no benchmarks yet")
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}: {module.__doc__.strip().splitlines()[0] if module.__doc__ else ''}")
        module.main(options) if options else module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
