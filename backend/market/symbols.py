"""The one definition of a well-formed symbol (docs/protocol.md: 1-20 of A-Z 0-9 . - ^ = /)."""

from __future__ import annotations

import re

SYMBOL_RE = re.compile(r"^[A-Z0-9.\-^=/]{1,20}$")


class InvalidSymbol(ValueError):
    pass


def symbol_normalize(raw: object) -> str:
    """Upper-case and validate; raise InvalidSymbol with a message a user can act on."""
    if not isinstance(raw, str):
        raise InvalidSymbol("symbol must be a string")
    symbol = raw.strip().upper()
    if not SYMBOL_RE.match(symbol):
        raise InvalidSymbol("symbol must be 1-20 characters of A-Z 0-9 . - ^ = /")
    return symbol
