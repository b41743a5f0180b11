"""FakeUpstream: a local threaded HTTP server speaking the market-data APIs' real wire formats.

The one thing the tests fake. Shapes follow the real responses:
- Yahoo: `fc.yahoo.com` sets the session cookie (answering 404), `/v1/test/getcrumb` answers
  the crumb as text/plain, `/v7/finance/quote?symbols=A,B&crumb=C` answers
  `{"quoteResponse": {"result": [...], "error": null}}` leaving unknown symbols out; a bad
  crumb is a 401 `{"finance": {"result": null, "error": {"code": "Unauthorized", ...}}}`.
- Alpha Vantage: `/query?function=GLOBAL_QUOTE&symbol=S&apikey=K` -> `{"Global Quote": {"01.
  symbol": ..., "05. price": "189.9500", ...}}` (all strings); unknown -> `{"Global Quote": {}}`;
  rate limit -> HTTP 200 `{"Note": "Thank you for using Alpha Vantage! ..."}`.
- Yahoo history: `/v8/finance/chart/S?period1=P1&period2=P2&interval=1d` -> `{"chart": {"result":
  [{"meta", "timestamp": [session opens], "indicators": {"quote": [{"close": [...], ...}]}}]}}`
  with null for a missing close; a symbol with no chart -> 404 `{"chart": {"result": null, ...}}`.
- Finnhub: `/api/v1/quote?symbol=S&token=K` -> `{"c","d","dp","h","l","o","pc","t"}`; unknown ->
  all zero with `t == 0`; rate limit -> HTTP 429 `{"error": "API limit reached..."}`.

Worker processes reach it over HTTP: pass `env()` to them. The quote bodies are built in
tests/fakes/upstream_wire.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.upstream_wire import (
    AV_INFORMATION,
    AV_NOTE,
    SESSION_OPEN_SECONDS,
    YAHOO_CHART_NOT_FOUND,
    FakeQuote,
    alpha_vantage_global_quote,
    finnhub_quote,
    yahoo_chart,
    yahoo_item,
)

SOURCES = ("yahoo", "alpha_vantage", "finnhub")


@dataclass
class Request:
    source: str
    path: str
    params: dict[str, str]
    at: float
    symbols: list[str] = field(default_factory=list)


class FakeUpstream:
    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.source_latency: dict[str, float] = {}
        self.garbled: set[str] = set()
        self.quotes: dict[str, FakeQuote] = {}
        self.requests: dict[str, list[Request]] = {s: [] for s in (*SOURCES, "yahoo_crumb")}
        # Symbols asked for, per source, as each request ARRIVES (before any latency), where
        # `requests` logs a request when it is answered.
        self.arrived: dict[str, list[str]] = {s: [] for s in SOURCES}
        self.failing: dict[str, int] = {}
        self.rate_limited: dict[str, str] = {}
        self.hidden: dict[str, set[str]] = {s: set() for s in SOURCES}
        self.crumb = "fakeCrumb1"
        # Daily bars per symbol for the v8 chart: (session open, close, volume).
        self.charts: dict[str, list[tuple[int, Any, Any]]] = {}
        self.requests["yahoo_chart"] = []
        self._crumbs = 1
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-upstream", daemon=True)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what the tests control ------------------------------------------------------------
    def set_quote(
        self, symbol: str, price: Any, previous_close: Any = None, volume: Any = None, at: int | None = None
    ) -> None:
        """`price` is sent as given: pass NaN, -1, "abc" or None to test rejection."""
        self.quotes[symbol] = FakeQuote(price, previous_close, volume, at or int(time.time()))

    def set_chart(self, symbol: str, first_day: int, closes: list[Any], volumes: list[Any] | None = None) -> None:
        """Daily bars from the UTC day starting at `first_day` (unix seconds), one a day;
        a close of None is sent as null, as Yahoo does for a day without one."""
        volumes = volumes or [1_000_000] * len(closes)
        self.charts[symbol] = [
            (first_day + n * 86400 + SESSION_OPEN_SECONDS, close, volume)
            for n, (close, volume) in enumerate(zip(closes, volumes, strict=True))
        ]

    def fail(self, source: str, status: int = 500) -> None:
        self.failing[source] = status

    def recover(self, source: str) -> None:
        self.failing.pop(source, None)
        self.rate_limited.pop(source, None)

    def hang(self, source: str, seconds: float) -> None:
        """The source answers only after `seconds` (above the read timeout: a hanging source)."""
        self.source_latency[source] = seconds

    def garble(self, source: str) -> None:
        """The source answers 200 with a body that is not JSON."""
        self.garbled.add(source)

    def rate_limit(self, source: str, field: str = "Note") -> None:
        """Alpha Vantage answers 200 with `field` (Note or Information); the others 429."""
        self.rate_limited[source] = field

    def hide(self, source: str, *symbols: str) -> None:
        """This source says these symbols do not exist."""
        self.hidden[source].update(symbols)

    def expire_crumb(self) -> None:
        with self._lock:
            self._crumbs += 1
            self.crumb = f"fakeCrumb{self._crumbs}"

    def reset_requests(self) -> None:
        with self._lock:
            for log in self.requests.values():
                log.clear()
            for arrivals in self.arrived.values():
                arrivals.clear()

    def symbols_requested(self, source: str) -> list[str]:
        return [s for r in list(self.requests[source]) for s in r.symbols]

    # --- where it is -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def yahoo_base_url(self) -> str:
        return f"{self.url}/yahoo"

    @property
    def yahoo_cookie_url(self) -> str:
        return f"{self.url}/yahoo-cookie"

    @property
    def alpha_vantage_base_url(self) -> str:
        return f"{self.url}/alphavantage"

    @property
    def finnhub_base_url(self) -> str:
        return f"{self.url}/finnhub"

    def env(self, sources: tuple[str, ...] = ("yahoo", "alpha_vantage", "finnhub")) -> dict[str, str]:
        return {
            "YAHOO_FINANCE_BASE_URL": self.yahoo_base_url,
            "YAHOO_FINANCE_COOKIE_URL": self.yahoo_cookie_url,
            "ALPHA_VANTAGE_BASE_URL": self.alpha_vantage_base_url,
            "ALPHA_VANTAGE_API_KEY": "fake-av-key",
            "FINNHUB_BASE_URL": self.finnhub_base_url,
            "FINNHUB_API_KEY": "fake-finnhub-key",
            "MARKET_DATA_SOURCES": ",".join(sources),
        }

    # --- the wire formats --------------------------------------------------------------------
    def _log(self, source: str, path: str, params: dict[str, str], symbols: list[str]) -> None:
        with self._lock:
            self.requests[source].append(Request(source, path, params, time.time(), symbols))

    def yahoo(self, path: str, params: dict[str, str], cookie: str) -> tuple[int, Any, dict[str, str]]:
        if path == "/yahoo-cookie":
            self._log("yahoo_crumb", path, params, [])
            return 404, "Not Found", {"Set-Cookie": "A3=d=AQABBfake&S=AQAAAfake; Path=/"}
        if path == "/yahoo/v1/test/getcrumb":
            self._log("yahoo_crumb", path, params, [])
            if "A3=" not in cookie:
                return 401, {"finance": {"result": None, "error": {"code": "Unauthorized"}}}, {}
            return 200, self.crumb, {}
        if path.startswith("/yahoo/v8/finance/chart/"):
            return self.yahoo_chart_answer(unquote(path.rsplit("/", 1)[-1]), params)
        if path != "/yahoo/v7/finance/quote":
            return 404, {"finance": {"result": None, "error": {"code": "Not Found"}}}, {}
        symbols = [s for s in params.get("symbols", "").split(",") if s]
        self._log("yahoo", path, params, symbols)
        if "yahoo" in self.failing:
            return self.failing["yahoo"], {"finance": {"result": None, "error": {"code": "Internal"}}}, {}
        if "yahoo" in self.rate_limited:
            return 429, "Too Many Requests", {}
        if params.get("crumb") != self.crumb:
            return (
                401,
                {"finance": {"result": None, "error": {"code": "Unauthorized", "description": "Invalid Crumb"}}},
                {},
            )
        result = [yahoo_item(s, self.quotes[s]) for s in symbols if s in self.quotes and s not in self.hidden["yahoo"]]
        return 200, {"quoteResponse": {"result": result, "error": None}}, {}

    def yahoo_chart_answer(self, symbol: str, params: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        self._log("yahoo_chart", f"/yahoo/v8/finance/chart/{symbol}", params, [symbol])
        if "yahoo" in self.failing:
            return self.failing["yahoo"], {"chart": {"result": None, "error": {"code": "Internal"}}}, {}
        if "yahoo" in self.rate_limited:
            return 429, "Too Many Requests", {}
        if symbol not in self.charts or symbol in self.hidden["yahoo"]:
            return 404, YAHOO_CHART_NOT_FOUND, {}
        first, last = int(params.get("period1", 0)), int(params.get("period2", 2**31))
        bars = [bar for bar in self.charts[symbol] if first <= bar[0] <= last]
        return 200, yahoo_chart(symbol, bars, now=min(last, int(time.time()))), {}

    def alpha_vantage(self, params: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        symbol = params.get("symbol", "")
        self._log("alpha_vantage", "/alphavantage/query", params, [symbol])
        if "alpha_vantage" in self.failing:
            return self.failing["alpha_vantage"], "<html>Bad Gateway</html>", {}
        if "alpha_vantage" in self.rate_limited:
            field_name = self.rate_limited["alpha_vantage"]
            return 200, {field_name: AV_NOTE if field_name == "Note" else AV_INFORMATION}, {}
        if params.get("function") != "GLOBAL_QUOTE":
            return 200, {"Error Message": "This API function does not exist."}, {}
        q = self.quotes.get(symbol)
        if q is None or symbol in self.hidden["alpha_vantage"]:
            return 200, {"Global Quote": {}}, {}
        day = datetime.fromtimestamp(q.at, tz=UTC).date().isoformat()
        return 200, {"Global Quote": alpha_vantage_global_quote(symbol, q, day)}, {}

    def finnhub(self, params: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        symbol = params.get("symbol", "")
        self._log("finnhub", "/finnhub/api/v1/quote", params, [symbol])
        if "finnhub" in self.failing:
            return self.failing["finnhub"], {"error": "internal error"}, {}
        if "finnhub" in self.rate_limited:
            return 429, {"error": "API limit reached. Please try again later. Remaining Limit: 0"}, {}
        q = self.quotes.get(symbol)
        if q is None or symbol in self.hidden["finnhub"]:
            return 200, {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}, {}
        return 200, finnhub_quote(q), {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                path = parts.path
                source = (
                    "yahoo" if path.startswith("/yahoo") else "alpha_vantage" if path.startswith("/alphavantage")
                    else "finnhub" if path.startswith("/finnhub") else ""
                )  # fmt: skip
                if source in fake.arrived:
                    asked = params.get("symbol") or params.get("symbols") or ""
                    with fake._lock:
                        fake.arrived[source].extend(s for s in asked.split(",") if s)
                if fake.latency:
                    time.sleep(fake.latency)
                if fake.source_latency.get(source):
                    time.sleep(fake.source_latency[source])
                if source in fake.garbled and not path.endswith("getcrumb") and "cookie" not in path:
                    fake._log(source, path, params, [])
                    data = b'{"quoteResponse": {"result": [{"symbol": "AAP<html>502 Bad Gateway'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if path.startswith("/yahoo"):
                    status, body, headers = fake.yahoo(path, params, self.headers.get("Cookie", ""))
                elif path == "/alphavantage/query":
                    status, body, headers = fake.alpha_vantage(params)
                elif path == "/finnhub/api/v1/quote":
                    status, body, headers = fake.finnhub(params)
                else:
                    status, body, headers = 404, {"error": "not found"}, {}
                if isinstance(body, str):
                    data, kind = body.encode(), "text/plain;charset=utf-8"
                else:
                    data, kind = json.dumps(body).encode(), "application/json;charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a killed worker, a closed pool) is expected here.
        pass


@contextmanager
def fake_upstream(*, latency: float = 0.0) -> Iterator[FakeUpstream]:
    server = FakeUpstream(latency=latency).start()
    try:
        yield server
    finally:
        server.stop()
