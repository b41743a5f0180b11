"""A benchmark's own scratch PostgreSQL database: `<DATABASE_URL's name>_<suffix>`, created
and migrated on entry, dropped on exit (the run never touches the database it is pointed at)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scratch_database(suffix: str) -> Iterator[bool]:
    """Yields False (and creates nothing) unless DATABASE_URL names a PostgreSQL server."""
    from django.db import connection

    if connection.vendor != "postgresql":
        print("skipped: DATABASE_URL must name a PostgreSQL server")
        yield False
        return
    original_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{original_name}_{suffix}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield True
    finally:
        connection.creation.destroy_test_db(original_name, verbosity=0)
