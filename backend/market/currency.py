"""Currencies: the one place for the minor units exchanges quote in, the exchange-suffix
rule, and FX pair symbols (docs/protocol.md, "Currencies").

An asset's `currency` is its trading currency: an ISO 4217 code, or one of the minor units
below (1/100 of their major currency). Its value in a portfolio's base currency is
`price * fx`, with `fx` the pair `<MAJOR><BASE>=X` (Yahoo's convention: the price of one unit
of MAJOR in BASE) divided by the unit, or just `1 / unit` when MAJOR is the base itself.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import NamedTuple

# Minor unit -> (major currency, minor units per major unit). Case matters: GBp is pence,
# GBP pounds.
MINOR_UNITS: dict[str, tuple[str, int]] = {
    "GBp": ("GBP", 100),
    "GBX": ("GBP", 100),
    "ZAc": ("ZAR", 100),
    "ILA": ("ILS", 100),
}

# Exchange suffix -> the currency that exchange quotes in; no suffix: USD.
SUFFIX_CURRENCY: dict[str, str] = {
    "L": "GBp",
    "DE": "EUR",
    "PA": "EUR",
    "AS": "EUR",
    "MI": "EUR",
    "T": "JPY",
    "TO": "CAD",
    "HK": "HKD",
    "SW": "CHF",
}
DEFAULT_CURRENCY = "USD"
PAIR_SUFFIX = "=X"
_PAIR = re.compile(r"^([A-Z]{3})([A-Z]{3})=X$")
_CODE = re.compile(r"^[A-Za-z]{3}$")


class InvalidCurrency(ValueError):
    pass


class Major(NamedTuple):
    code: str  # ISO 4217
    unit: int  # minor units per major unit: 1 for an ISO code itself

    @property
    def factor(self) -> Decimal:
        """What one unit of the quoted currency is in the major one (1, or 0.01)."""
        return Decimal(1) / Decimal(self.unit)


def currency_normalize(code: str) -> str:
    """A currency as stored: a minor unit exactly as spelled above (`GBp`, `ZAc`: case
    matters), any other three letters upper-cased. Raises InvalidCurrency."""
    code = (code or "").strip()
    if code in MINOR_UNITS:
        return code
    if not _CODE.match(code):
        raise InvalidCurrency(f"{code!r} is not a currency code (three letters)")
    return code.upper()


def currency_major(code: str) -> Major:
    """The major currency of a quoted one: GBp -> (GBP, 100), EUR -> (EUR, 1)."""
    if code in MINOR_UNITS:
        return Major(*MINOR_UNITS[code])
    return Major(code.upper(), 1)


def currencies_of_major(code: str) -> list[str]:
    """Every currency whose major currency is `code`: GBP -> GBP, GBp, GBX."""
    code = code.upper()
    return [code, *(minor for minor, (major, _) in MINOR_UNITS.items() if major == code)]


def currencies_equivalent(left: str, right: str) -> bool:
    """The same money: equal codes, or two spellings of one minor unit (GBp, GBX)."""
    return currency_major(left) == currency_major(right)


def currency_for_symbol(symbol: str) -> str:
    """The exchange-suffix rule, for an asset the source did not name a currency for. A pair
    is quoted in its second currency."""
    pair = pair_parse(symbol)
    if pair is not None:
        return pair[1]
    _, dot, suffix = symbol.rpartition(".")
    return SUFFIX_CURRENCY.get(suffix, DEFAULT_CURRENCY) if dot else DEFAULT_CURRENCY


def pair_symbol(currency: str, base: str) -> str | None:
    """The pair converting `currency` (an asset's) into `base`, or None when no pair is
    needed (the same major currency: fx is then 1 / unit)."""
    major = currency_major(currency).code
    base = base.upper()
    return None if major == base else f"{major}{base}{PAIR_SUFFIX}"


def pair_parse(symbol: str) -> tuple[str, str] | None:
    """`EURUSD=X` -> ("EUR", "USD"); None for any other symbol."""
    match = _PAIR.match(symbol)
    return (match.group(1), match.group(2)) if match else None


def fx_from_pair(currency: str, pair_price: Decimal | None) -> Decimal | None:
    """Units of base per unit of `currency` from its pair's price (None: no rate yet)."""
    if pair_price is None:
        return None
    return pair_price / currency_major(currency).unit


def sql_major_case(column: str) -> str:
    """SQL: the major currency of a currency column (the rule above, for statements)."""
    whens = " ".join(f"WHEN '{minor}' THEN '{major}'" for minor, (major, _) in MINOR_UNITS.items())
    return f"(CASE {column} {whens} ELSE upper({column}) END)"


def sql_factor_case(column: str) -> str:
    """SQL: what one unit of a currency column is in its major currency (1 or 0.01)."""
    whens = " ".join(f"WHEN '{minor}' THEN {Decimal(1) / unit}" for minor, (_, unit) in MINOR_UNITS.items())
    return f"(CASE {column} {whens} ELSE 1 END)"
