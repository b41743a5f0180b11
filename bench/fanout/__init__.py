"""The pieces of the fan-out benchmark (bench/bench_fanout.py): the designs under test, the
processes it starts (Daphne, publisher, load generators), one measured run and its table."""
