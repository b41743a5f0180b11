"""Set-based writes of many rows with different values.

Django's `bulk_update` writes `CASE WHEN id = 1 THEN ... WHEN id = 2 ...` per column, which
PostgreSQL evaluates linearly for every row (quadratic in the batch), and a `VALUES` list
makes the server parse one expression per value. On PostgreSQL one
`UPDATE ... FROM unnest(array, array, ...)` takes each column as a single array literal and
joins; elsewhere (SQLite, the demo) `bulk_update` is fine at demo sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from django.db import connection, models


def _array_literal(values: Sequence[Any]) -> str:
    # Only ints and Decimals (or NULL) go here: their text never needs quoting.
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


def rows_update(
    *,
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[int | Decimal | None]],
    constants: Mapping[str, Any] | None = None,
) -> int:
    """Set `fields` of each row `(pk, value, value, ...)` (ints or Decimals) and the same
    `constants` on all of them, in one statement; returns the rows sent."""
    if not rows:
        return 0
    constants = dict(constants or {})
    meta = model._meta
    if connection.vendor != "postgresql":
        objects = [model(pk=row[0], **dict(zip(fields, row[1:], strict=True)), **constants) for row in rows]
        model._default_manager.bulk_update(objects, [*fields, *constants], batch_size=500)
        return len(rows)
    quote = connection.ops.quote_name
    pk = meta.pk
    assert pk is not None
    columns = [pk] + [cast(models.Field, meta.get_field(name)) for name in fields]
    names = [quote(str(column.column)) for column in columns]
    sources = ", ".join(f"%s::{column.db_type(connection)}[]" for column in columns)
    assignments = [f"{name} = v.{name}" for name in names[1:]]
    assignments += [f"{quote(str(cast(models.Field, meta.get_field(n)).column))} = %s" for n in constants]
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {', '.join(assignments)} "  # noqa: S608 (identifiers from model meta)
        f"FROM unnest({sources}) AS v({', '.join(names)}) WHERE t.{names[0]} = v.{names[0]}"
    )
    arrays = [_array_literal([row[i] for row in rows]) for i in range(len(columns))]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*constants.values(), *arrays])
    return len(rows)
