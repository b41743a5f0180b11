"""Each source's parser against bodies shaped like the real responses."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backend.market.services.sources.alpha_vantage import parse_alpha_vantage_body
from backend.market.services.sources.base import Failure, FailureKind, InvalidQuote, QuoteData, parse_price
from backend.market.services.sources.finnhub import parse_finnhub_body
from backend.market.services.sources.simulated import SimulatedSource
from backend.market.services.sources.yahoo import parse_yahoo_response

YAHOO_AAPL = {
    "language": "en-US",
    "quoteType": "EQUITY",
    "currency": "USD",
    "regularMarketPrice": 189.95,
    "regularMarketTime": 1700254801,
    "regularMarketChange": 0.26,
    "regularMarketChangePercent": 0.13706,
    "regularMarketVolume": 50922721,
    "regularMarketDayHigh": 190.38,
    "regularMarketDayLow": 188.57,
    "regularMarketPreviousClose": 189.69,
    "marketCap": 2954201038848,
    "symbol": "AAPL",
}


@pytest.mark.parametrize("bad", [None, 0, -1, -0.01, "abc", "", float("nan"), float("inf"), True, [], {}])
def test_parse_price_rejects_missing_zero_negative_nan_and_non_numbers(bad):
    with pytest.raises(InvalidQuote):
        parse_price(bad)


def test_parse_price_keeps_the_decimal_the_json_held():
    assert parse_price(189.95) == Decimal("189.95")
    assert parse_price("0.000123") == Decimal("0.000123")


def test_yahoo_parses_every_field_of_a_v7_result():
    answers = parse_yahoo_response(["AAPL"], {"quoteResponse": {"result": [YAHOO_AAPL], "error": None}})
    quote = answers["AAPL"]
    assert isinstance(quote, QuoteData)
    assert quote.price == Decimal("189.95")
    assert quote.previous_close == Decimal("189.69")
    assert quote.change == Decimal("0.26")
    assert quote.volume == 50922721
    assert quote.market_cap == 2954201038848
    assert quote.high == Decimal("190.38")
    assert quote.quoted_at == datetime.fromtimestamp(1700254801, tz=UTC)
    assert quote.source == "yahoo"


def test_yahoo_reports_a_symbol_left_out_of_the_result_as_not_found():
    answers = parse_yahoo_response(["AAPL", "NOPE"], {"quoteResponse": {"result": [YAHOO_AAPL], "error": None}})
    assert answers["NOPE"] == Failure(FailureKind.NOT_FOUND, "yahoo: no such symbol")


@pytest.mark.parametrize("price", [math.nan, -3.5, 0, "12.x", None])
def test_yahoo_rejects_a_bad_price_without_losing_the_rest_of_the_batch(price):
    bad = dict(YAHOO_AAPL, symbol="BAD", regularMarketPrice=price)
    answers = parse_yahoo_response(["AAPL", "BAD"], {"quoteResponse": {"result": [YAHOO_AAPL, bad], "error": None}})
    assert isinstance(answers["AAPL"], QuoteData)
    assert isinstance(answers["BAD"], Failure)
    assert answers["BAD"].kind is FailureKind.REJECTED  # about BAD, not about Yahoo


def test_yahoo_treats_a_body_without_quote_response_as_transient():
    answers = parse_yahoo_response(["AAPL"], {"finance": {"result": None, "error": {"code": "Unauthorized"}}})
    assert answers["AAPL"].kind is FailureKind.TRANSIENT  # type: ignore[union-attr]


AV_IBM = {
    "Global Quote": {
        "01. symbol": "IBM",
        "02. open": "161.0000",
        "03. high": "162.7400",
        "04. low": "160.8200",
        "05. price": "162.2300",
        "06. volume": "3361214",
        "07. latest trading day": "2026-11-20",
        "08. previous close": "160.9800",
        "09. change": "1.2500",
        "10. change percent": "0.7765%",
    }
}


def test_alpha_vantage_parses_a_global_quote_of_strings():
    fetched = datetime(2026, 11, 20, 18, 0, 5, 123, tzinfo=UTC)
    quote = parse_alpha_vantage_body("IBM", AV_IBM, fetched_at=fetched)
    assert isinstance(quote, QuoteData)
    assert quote.price == Decimal("162.2300")
    assert quote.change_percent == Decimal("0.7765")
    assert quote.volume == 3361214
    assert quote.quoted_at == fetched.replace(microsecond=0)


def test_alpha_vantage_stamps_a_past_trading_day_at_the_us_close():
    quote = parse_alpha_vantage_body("IBM", AV_IBM, fetched_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    assert isinstance(quote, QuoteData)
    assert quote.quoted_at == datetime(2026, 11, 20, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize("field", ["Note", "Information"])
def test_alpha_vantage_200_with_note_or_information_is_a_rate_limit_not_data(field):
    answer = parse_alpha_vantage_body(
        "IBM", {field: "Thank you for using Alpha Vantage!"}, fetched_at=datetime.now(UTC)
    )
    assert answer.kind is FailureKind.RATE_LIMITED  # type: ignore[union-attr]


def test_alpha_vantage_empty_global_quote_means_unknown_symbol():
    answer = parse_alpha_vantage_body("NOPE", {"Global Quote": {}}, fetched_at=datetime.now(UTC))
    assert answer.kind is FailureKind.NOT_FOUND  # type: ignore[union-attr]


@pytest.mark.parametrize("price", ["-1.0000", "0.0000", "nan", "NaN", "", "n/a"])
def test_alpha_vantage_rejects_bad_prices(price):
    body = {"Global Quote": dict(AV_IBM["Global Quote"], **{"05. price": price})}
    answer = parse_alpha_vantage_body("IBM", body, fetched_at=datetime.now(UTC))
    assert isinstance(answer, Failure)
    assert answer.kind is FailureKind.REJECTED


def test_finnhub_parses_a_quote():
    body = {"c": 261.74, "d": 2.28, "dp": 0.8788, "h": 263.31, "l": 260.68, "o": 261.07, "pc": 259.46, "t": 1700254801}
    quote = parse_finnhub_body("AAPL", body)
    assert isinstance(quote, QuoteData)
    assert quote.price == Decimal("261.74")
    assert quote.previous_close == Decimal("259.46")
    assert quote.change_percent == Decimal("0.8788")
    assert quote.source == "finnhub"


def test_finnhub_zero_price_and_zero_time_means_unknown_symbol():
    body = {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}
    assert parse_finnhub_body("NOPE", body).kind is FailureKind.NOT_FOUND  # type: ignore[union-attr]


@pytest.mark.parametrize("price", [0, -5, "x", None, float("nan")])
def test_finnhub_rejects_bad_prices_that_have_a_time(price):
    answer = parse_finnhub_body("AAPL", {"c": price, "pc": 10, "t": 1700254801})
    assert isinstance(answer, Failure)
    assert answer.kind is FailureKind.REJECTED


def test_finnhub_error_in_a_200_answer_is_about_that_symbol_not_the_source():
    answer = parse_finnhub_body("WEIRD", {"error": "Symbol not supported"})
    assert isinstance(answer, Failure)
    assert answer.kind is FailureKind.REJECTED
    assert "Symbol not supported" in answer.message


def test_a_body_that_is_not_the_sources_format_is_still_a_failure_of_the_source():
    assert parse_finnhub_body("AAPL", ["not", "a", "quote"]).kind is FailureKind.TRANSIENT  # type: ignore[union-attr]
    answer = parse_alpha_vantage_body("IBM", {"Something": "else"}, fetched_at=datetime.now(UTC))
    assert answer.kind is FailureKind.TRANSIENT  # type: ignore[union-attr]


def test_simulated_source_is_deterministic_and_positive():
    clock = lambda: 1_790_000_000.0  # noqa: E731
    first = SimulatedSource(clock=clock).fetch(["AAPL", "MSFT"], permit=lambda: True)
    again = SimulatedSource(clock=clock).fetch(["AAPL", "MSFT"], permit=lambda: True)
    assert first == again
    for quote in first.values():
        assert isinstance(quote, QuoteData)
        assert quote.price > 0
        assert quote.change == quote.price - quote.previous_close  # type: ignore[operator]


def test_simulated_price_moves_a_little_between_cycles():
    a = SimulatedSource(clock=lambda: 1_790_000_000.0).quote("AAPL").price
    b = SimulatedSource(clock=lambda: 1_790_000_030.0).quote("AAPL").price
    assert a != b
    assert abs(a - b) / a < Decimal("0.02")


def test_yahoo_chart_bars_skip_null_and_bad_closes():
    from backend.market.services.history import parse_yahoo_chart

    body = {
        "chart": {
            "result": [
                {
                    "meta": {"symbol": "AAPL", "currency": "USD"},
                    "timestamp": [1763476200, 1763562600, 1763649000, 1763735400],
                    "indicators": {"quote": [{"close": [267.44, None, -1, 271.49], "volume": [45e6, None, 1, 52e6]}]},
                }
            ],
            "error": None,
        }
    }
    bars = parse_yahoo_chart(body)
    assert [(b[1], b[2]) for b in bars] == [(Decimal("267.44"), 45_000_000), (Decimal("271.49"), 52_000_000)]
    assert parse_yahoo_chart({"chart": {"result": None, "error": {"code": "Not Found"}}}) == []
