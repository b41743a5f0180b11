"""The Interactive Brokers preset of the CSV import: a Flex Query in CSV format with column
headers (docs/protocol.md, "Import", lists the columns read).

Trades section (a row with `Buy/Sell`): BUY -> buy, SELL -> sell, `Quantity` (negative for a
sell: its absolute value), `TradePrice`, `IBCommission` (negative: its absolute value is the
fee), `CurrencyPrimary`, `FXRateToBase`, `DateTime` (yyyyMMdd;HHmmss) or `TradeDate`
(yyyyMMdd), `TransactionID` (or `TradeID`) as external_id. Rows of `AssetClass` CASH (currency
conversions) are not holdings and are skipped.
Cash Transactions section (a row with `Type` and `Amount`): `Dividends` and `Payment In Lieu
Of Dividends` -> dividend; `Withholding Tax`, `Other Fees`, `Commission Adjustments` with a
negative amount -> fee; other types (deposits, interest) are skipped.
Symbols: `Symbol` plus the Yahoo suffix of `ListingExchange` (LSE -> .L, IBIS -> .DE, ...);
IBKR's `BRK B` style becomes `BRK-B`. Prices IBKR gives in GBP for an asset quoted in GBp
are converted (x100, rate /100). Times are taken as UTC; `FXRateToBase` is taken as the rate
into the portfolio's base currency (the account's base currency should be the portfolio's).
A file may hold several sections, each starting with its own header line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

from .import_lines import ImportResult, Line, LineError, decimal_cell, line_id
from .transactions import TransactionInput

# IBKR ListingExchange -> Yahoo suffix.
EXCHANGE_SUFFIX = {
    "LSE": ".L",
    "LSEETF": ".L",
    "IBIS": ".DE",
    "IBIS2": ".DE",
    "FWB": ".DE",
    "SBF": ".PA",
    "AEB": ".AS",
    "BVME": ".MI",
    "TSEJ": ".T",
    "TSE": ".TO",
    "SEHK": ".HK",
    "EBS": ".SW",
}
DIVIDEND_TYPES = {"dividends", "payment in lieu of dividends"}
FEE_TYPES = {"withholding tax", "other fees", "commission adjustments"}
MARKERS = {"clientaccountid", "currencyprimary", "buy/sell", "transactionid"}


def ibkr_header(cells: list[str]) -> bool:
    names = {c.strip().lower() for c in cells}
    return "currencyprimary" in names and ("buy/sell" in names or "transactionid" in names or "amount" in names)


def _symbol(cell: str, exchange: str) -> str:
    symbol = cell.strip().replace(" ", "-")
    return symbol + EXCHANGE_SUFFIX.get(exchange.strip().upper(), "") if symbol else ""


def _when(row: dict[str, str]) -> datetime:
    value = (
        row.get("datetime") or row.get("tradedate") or row.get("settledate") or row.get("reportdate") or ""
    ).strip()
    value = value.replace(",", ";").replace(" ", ";")
    for pattern in ("%Y%m%d;%H%M%S", "%Y%m%d", "%Y-%m-%d;%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise LineError(f"DateTime: {value!r} is not yyyyMMdd;HHmmss")


def _trade(row: dict[str, str]) -> TransactionInput | None:
    if row.get("assetclass", "").strip().upper() == "CASH":
        return None
    side = row.get("buy/sell", "").strip().upper()
    quantity = decimal_cell(row.get("quantity", ""), "Quantity")
    commission = decimal_cell(row.get("ibcommission", ""), "IBCommission")
    ident = (row.get("transactionid") or row.get("tradeid") or "").strip()
    return TransactionInput(
        type="sell" if side.startswith("SELL") else "buy",
        symbol=_symbol(row.get("symbol", ""), row.get("listingexchange", "")) or None,
        quantity=abs(quantity) if quantity is not None else None,
        price=decimal_cell(row.get("tradeprice", ""), "TradePrice"),
        fee=abs(commission) if commission is not None else None,
        currency=row.get("currencyprimary", "").strip() or None,
        fx_rate=decimal_cell(row.get("fxratetobase", ""), "FXRateToBase"),
        executed_at=_when(row),
        external_id=f"ibkr:{ident}" if ident else None,
    )


def _cash(row: dict[str, str]) -> TransactionInput | None:
    kind = row.get("type", "").strip().lower()
    amount = decimal_cell(row.get("amount", ""), "Amount")
    if amount is None or not (kind in DIVIDEND_TYPES or (kind in FEE_TYPES and amount < 0)):
        return None
    ident = row.get("transactionid", "").strip()
    return TransactionInput(
        type="dividend" if kind in DIVIDEND_TYPES else "fee",
        symbol=_symbol(row.get("symbol", ""), row.get("listingexchange", "")) or None,
        amount=abs(amount),
        currency=row.get("currencyprimary", "").strip() or None,
        fx_rate=decimal_cell(row.get("fxratetobase", ""), "FXRateToBase"),
        executed_at=_when(row),
        external_id=f"ibkr:{ident}" if ident else None,
    )


def ibkr_lines(rows: Iterator[list[str]], header: list[str], result: ImportResult) -> Iterator[Line]:
    names = [h.strip().lower() for h in header]
    seen: dict[str, int] = {}
    for number, cells in enumerate(rows, start=2):
        if not any(c.strip() for c in cells):
            continue
        lowered = [c.strip().lower() for c in cells]
        if MARKERS & set(lowered) and ibkr_header(cells):
            names = lowered  # the next section's header
            continue
        row = dict(zip(names, cells, strict=False))
        try:
            data = _trade(row) if row.get("buy/sell", "").strip() else _cash(row) if "amount" in row else None
        except LineError as exc:
            result.error(number, str(exc))
            continue
        if data is not None:
            if data.external_id is None:
                data = replace(data, external_id=line_id(cells, seen))
            yield Line(number, data, minor_units=True)
