"""CSV import of transactions (docs/protocol.md, "Import"): all or nothing, idempotent.

The file (the contract's columns, or a broker preset: broker_ibkr.py) is parsed line by line
into TransactionInputs; any error in any line imports nothing and is reported with its line
number. Each line's `external_id` (given, or `line:` + a hash of the line and its occurrence
in the file) makes a re-import create nothing: lines whose id the portfolio already has are
counted as duplicates. Then, under the portfolio's row lock, the new rows are inserted in one
bulk statement, every touched position is replayed once, and one `portfolio_changed` asks for
one revaluation.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection

from backend.market.currency import InvalidCurrency, currency_major, currency_normalize
from backend.market.models import Asset
from backend.market.symbols import InvalidSymbol, symbol_normalize
from backend.portfolios.models import Portfolio, Transaction
from backend.portfolios.rates import fx_latest

from .broker_ibkr import ibkr_header, ibkr_lines
from .import_lines import ImportResult, Line, LineError, date_cell, decimal_cell, line_id
from .ledger import InsufficientQuantity, ledger_totals_store, position_adopt, position_derive
from .transactions import (
    FxUnavailable,
    TransactionInput,
    TransactionInvalid,
    assets_prepare,
    changed,
    currency_resolve,
    portfolio_locked,
    transaction_build,
    transaction_check,
)

MAX_LINES = 100_000
COLUMNS = (
    "date",
    "type",
    "symbol",
    "quantity",
    "price",
    "fee",
    "amount",
    "ratio",
    "currency",
    "fx_rate",
    "external_id",
)
BATCH = 5_000


class _Refused(Exception):
    """Rolls the import back."""


def contract_lines(rows: Iterator[list[str]], header: list[str], result: ImportResult) -> Iterator[Line]:
    """The contract's format (any column order; missing columns are empty)."""
    names = [h.strip().lower() for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown or "date" not in names or "type" not in names:
        result.error(1, f"header must name the columns {','.join(COLUMNS)} (unknown: {','.join(unknown) or '-'})")
        return
    seen: dict[str, int] = {}
    for number, cells in enumerate(rows, start=2):
        if not any(c.strip() for c in cells):
            continue
        row = dict(zip(names, cells, strict=False))
        try:
            data = TransactionInput(
                type=row.get("type", "").strip().lower(),
                symbol=row.get("symbol", "").strip() or None,
                quantity=decimal_cell(row.get("quantity", ""), "quantity"),
                price=decimal_cell(row.get("price", ""), "price"),
                fee=decimal_cell(row.get("fee", ""), "fee"),
                amount=decimal_cell(row.get("amount", ""), "amount"),
                ratio=row.get("ratio", "").strip(),
                currency=row.get("currency", "").strip() or None,
                fx_rate=decimal_cell(row.get("fx_rate", ""), "fx_rate"),
                executed_at=date_cell(row.get("date", "")),
                external_id=row.get("external_id", "").strip() or line_id(cells, seen),
            )
        except LineError as exc:
            result.error(number, str(exc))
            continue
        yield Line(number, data)


def _checked(lines: Iterable[Line], result: ImportResult) -> list[Line]:
    """Each line by the type's rules, its symbol and currency well-formed, a date given."""
    checked: list[Line] = []
    for line in lines:
        data = line.data
        errors = transaction_check(data)
        if data.executed_at is None:
            errors.setdefault("date", "required")
        try:
            if data.symbol:
                line = replace(line, data=replace(data, symbol=symbol_normalize(data.symbol)))
            if data.currency:
                currency_normalize(data.currency)
        except (InvalidSymbol, InvalidCurrency) as exc:
            errors.setdefault("symbol" if isinstance(exc, InvalidSymbol) else "currency", str(exc))
        if errors:
            result.error(line.number, "; ".join(f"{k}: {v}" for k, v in errors.items()))
        else:
            checked.append(line)
    return checked


def _new_only(portfolio: Portfolio, lines: list[Line], result: ImportResult) -> list[Line]:
    """Lines whose external_id the portfolio (or an earlier line) has already: duplicates."""
    ids = [line.data.external_id for line in lines]
    known: set[str | None] = set()
    for start in range(0, len(ids), BATCH):
        recorded = Transaction.objects.filter(portfolio=portfolio, external_id__in=ids[start : start + BATCH])
        known.update(recorded.values_list("external_id", flat=True))
    fresh: list[Line] = []
    for line in lines:
        if line.data.external_id in known:
            result.duplicates += 1
            continue
        known.add(line.data.external_id)
        fresh.append(line)
    return fresh


def _in_minor_units(data: TransactionInput, asset: Asset | None) -> TransactionInput:
    """A preset's line priced in GBP for a GBp asset: prices and amounts x100, rate /100."""
    if asset is None or not data.currency:
        return data
    major = currency_major(asset.currency)
    if major.unit == 1 or data.currency.upper() != major.code:
        return data
    scale = Decimal(major.unit)

    def times(value: Decimal | None) -> Decimal | None:
        return None if value is None else value * scale

    fx_rate = None if data.fx_rate is None else data.fx_rate / scale
    return replace(
        data,
        price=times(data.price),
        fee=times(data.fee),
        amount=times(data.amount),
        currency=asset.currency,
        fx_rate=fx_rate,
    )


def _rows(portfolio: Portfolio, lines: list[Line], assets: dict[str, Asset], result: ImportResult) -> list[Transaction]:
    """The rows to insert; a line without fx_rate gets the latest rate (one look-up per currency)."""
    now = datetime.now(UTC)
    rows: list[Transaction] = []
    rates: dict[str, Decimal | None] = {}
    base = portfolio.base_currency
    for line in lines:
        asset = assets.get(line.data.symbol or "")
        data = _in_minor_units(line.data, asset) if line.minor_units else line.data
        try:
            if data.fx_rate is None:
                currency = currency_resolve(data, asset, base)
                if currency not in rates:
                    rates[currency] = fx_latest(currency=currency, base=base)
                rate = rates[currency]
                if rate is None:
                    raise FxUnavailable(f"no {currency}->{base} rate known yet: give fx_rate")
                data = replace(data, fx_rate=rate)
            rows.append(transaction_build(portfolio=portfolio, data=data, asset=asset, now=now))
        except TransactionInvalid as exc:
            result.error(line.number, str(exc))
        except FxUnavailable as exc:
            result.error(line.number, f"{FxUnavailable.code}: {exc}")
    return rows


def _derive(portfolio: Portfolio, rows: list[Transaction], lines: list[Line], result: ImportResult) -> None:
    """Replay every touched position once; a sell left uncovered is an error of its line."""
    numbers = {row.pk: line.number for row, line in zip(rows, lines, strict=True)}
    for asset_id in sorted({row.asset_id for row in rows if row.asset_id is not None}):
        try:
            position_derive(portfolio=portfolio, asset_id=asset_id)
        except InsufficientQuantity as exc:
            number = numbers.get(exc.transaction_id) if exc.transaction_id is not None else None
            if number is not None:
                result.error(number, f"{InsufficientQuantity.code}: {exc}")
            else:
                result.error(
                    0, f"{InsufficientQuantity.code}: transaction {exc.transaction_id} would be uncovered: {exc}"
                )


# The columns an import writes besides portfolio_id and created_at, with their array types.
_INSERTED = {
    "asset_id": "bigint",
    "type": "varchar",
    "quantity": "numeric",
    "price": "numeric",
    "fee": "numeric",
    "amount": "numeric",
    "ratio": "varchar",
    "currency": "varchar",
    "fx_rate": "numeric",
    "executed_at": "timestamptz",
    "external_id": "varchar",
}
INSERT_CHUNK = 25_000


def _array_literal(values: Iterable[object]) -> str:
    """One PostgreSQL array literal (elements quoted): a single parameter, not one per value."""

    def element(value: object) -> str:
        if value is None:
            return "NULL"
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "{" + ",".join(element(v) for v in values) + "}"


def transactions_insert(*, portfolio: Portfolio, rows: list[Transaction]) -> None:
    """Insert the rows, setting their ids. On PostgreSQL one INSERT ... SELECT FROM unnest()
    per 25,000 rows, each column ONE array parameter (Django's bulk_create prepares every
    value on its own: most of a 100,000-line import); elsewhere bulk_create."""
    if connection.vendor != "postgresql":
        Transaction.objects.bulk_create(rows, batch_size=BATCH)
        return
    columns = ", ".join(_INSERTED)
    arrays = ", ".join(f"%s::{kind}[]" for kind in _INSERTED.values())
    sql = (
        f"INSERT INTO portfolios_transaction (portfolio_id, created_at, {columns}) "  # noqa: S608 (constant names)
        f"SELECT %s, %s, * FROM unnest({arrays}) RETURNING id"
    )
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            values = [_array_literal(getattr(row, column) for row in chunk) for column in _INSERTED]
            cursor.execute(sql, [portfolio.pk, now, *values])
            # RETURNING gives the rows in the order the SELECT produced them (as bulk_create assumes).
            for row, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                row.pk = pk
                row._state.adding = False


def lines_import(*, portfolio: Portfolio, lines: Iterable[Line], result: ImportResult) -> ImportResult:
    """Import parsed lines (parse errors already in `result`): all or nothing."""
    checked = _checked(lines, result)
    if result.errors:
        return result
    fresh = _new_only(portfolio, checked, result)
    if not fresh:
        return result
    symbols = {line.data.symbol for line in fresh if line.data.symbol}
    currencies = {currency_normalize(ln.data.currency) for ln in fresh if ln.data.currency and not ln.data.symbol}
    assets = assets_prepare(portfolio=portfolio, symbols=symbols, currencies=currencies)
    try:
        with portfolio_locked(portfolio) as locked:
            now = datetime.now(UTC)
            for asset in assets.values():
                position_adopt(portfolio=locked, asset_id=asset.pk, now=now)
            rows = _rows(locked, fresh, assets, result)
            if result.errors:
                raise _Refused
            transactions_insert(portfolio=locked, rows=rows)
            _derive(locked, rows, fresh, result)
            if result.errors:
                raise _Refused
            ledger_totals_store(portfolio=locked)
            changed(locked.pk, since=min(row.executed_at for row in rows), symbols=list(assets))
            result.created = len(rows)
    except _Refused:
        result.created = 0
    return result


def transactions_import(*, portfolio: Portfolio, content: bytes, preset: str | None = None) -> ImportResult:
    """Import a CSV file's transactions into the portfolio. `preset`: "ibkr" (Interactive
    Brokers' Flex Query CSV), or None: the contract's columns, or IBKR's if its header says so."""
    result = ImportResult()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.error(1, "the file is not UTF-8 text")
        return result
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None:
        result.error(1, "the file is empty: it needs a header line")
        return result
    if preset == "ibkr" or (not preset and ibkr_header(header)):
        lines = list(ibkr_lines(rows, header, result))
    elif preset in (None, "", "tickerflow"):
        lines = list(contract_lines(rows, header, result))
    else:
        result.error(1, f"unknown format {preset!r}: tickerflow or ibkr")
        return result
    if len(lines) + len(result.errors) > MAX_LINES:
        number = max([line.number for line in lines] + [int(str(e["line"])) for e in result.errors])
        return ImportResult(errors=[{"line": number, "message": f"more than {MAX_LINES} lines: import them in parts"}])
    lines_import(portfolio=portfolio, lines=lines, result=result)
    result.errors.sort(key=lambda e: int(str(e["line"])))
    return result
