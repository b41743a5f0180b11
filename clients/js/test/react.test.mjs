// The React hook on jsdom with React Testing Library, against a fake server socket.
import "./dom.mjs";

import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import { act, cleanup, render, screen } from "@testing-library/react";
import { createElement as h, StrictMode } from "react";

import { TickerflowProvider, usePersonalFinanceWebSocket, useTickerflow } from "../src/react.js";
import { FakeSocket, FakeTimers } from "./fakes.mjs";

let timers;
beforeEach(() => {
  FakeSocket.reset();
  timers = new FakeTimers();
});
afterEach(() => cleanup());

const clientOptions = () => ({ url: "ws://test/ws/realtime/", WebSocket: FakeSocket, timers, random: () => 0.5 });

function Price({ symbol }) {
  const { prices, status } = useTickerflow({ assets: [symbol] });
  return h("p", { "data-testid": `price-${symbol}` }, `${status} ${prices[symbol.toUpperCase()]?.price ?? "-"}`);
}

/** Renders nothing; hands the hook's result to the test. */
function probe(options) {
  const seen = { current: null };
  function Probe() {
    seen.current = useTickerflow(options);
    return null;
  }
  return { seen, Probe };
}

const quote = (symbol, price) => ({
  symbol,
  price,
  change: 1,
  change_percent: 0.5,
  volume: 10,
  high: price,
  low: price,
  market_cap: null,
  previous_close: price - 1,
  last_updated: "2026-12-05T22:36:12Z",
  source: "simulated",
});

test("every hook under a provider shares one client, and prices arrive", () => {
  render(
    h(TickerflowProvider, { options: clientOptions() }, [
      h(Price, { key: 1, symbol: "AAPL" }),
      h(Price, { key: 2, symbol: "aapl" }),
      h(Price, { key: 3, symbol: "MSFT" }),
    ]),
  );
  assert.equal(FakeSocket.instances.length, 1);
  assert.equal(screen.getByTestId("price-MSFT").textContent, "connecting -");
  const socket = FakeSocket.last;
  act(() => socket.welcome());
  assert.deepEqual(
    socket.sentOfType("subscribe_asset").map((d) => d.symbol).sort(),
    ["AAPL", "MSFT"],
    "one subscription per symbol, however many components watch it",
  );
  act(() => socket.push("asset_update", quote("AAPL", 223.65)));
  assert.equal(screen.getByTestId("price-AAPL").textContent, "connected 223.65");
  assert.equal(screen.getByTestId("price-aapl").textContent, "connected 223.65");
  assert.equal(screen.getByTestId("price-MSFT").textContent, "connected -");
});

test("a subscription lasts as long as the last component that watches it", () => {
  const tree = (a, b) =>
    h(TickerflowProvider, { options: clientOptions() }, [
      a && h(Price, { key: "a", symbol: "AAPL" }),
      b && h(Price, { key: "b", symbol: "AAPL" }),
      h(Price, { key: "c", symbol: "MSFT" }),
    ]);
  const { rerender } = render(tree(true, true));
  const socket = FakeSocket.last;
  act(() => socket.welcome());
  act(() => socket.push("asset_update", quote("AAPL", 100)));
  rerender(tree(false, true));
  assert.deepEqual(socket.sentOfType("unsubscribe_asset"), []);
  rerender(tree(false, false));
  assert.deepEqual(socket.sentOfType("unsubscribe_asset"), [{ symbol: "AAPL" }]);
  rerender(tree(true, false));
  assert.deepEqual(socket.sentOfType("subscribe_asset").filter((d) => d.symbol === "AAPL").length, 2);
  assert.equal(screen.getByTestId("price-AAPL").textContent, "connected -", "no stale price after a gap in watching");
  assert.equal(FakeSocket.instances.length, 1);
});

test("portfolio figures merge their positions, position updates and notifications are kept", () => {
  const { seen, Probe } = probe({ portfolios: [1] });
  render(h(TickerflowProvider, { options: { ...clientOptions(), maxNotifications: 2 } }, h(Probe)));
  const socket = FakeSocket.last;
  act(() => socket.welcome());
  assert.deepEqual(socket.sentOfType("subscribe_portfolio"), [{ portfolio_id: 1 }]);
  const figures = {
    portfolio_id: 1,
    name: "Growth",
    total_value: 1000,
    total_cost: 800,
    daily_change: 10,
    daily_change_percent: 1,
    total_return: 200,
    total_return_percent: 25,
    value_changed: false,
    valued_at: "2026-12-05T22:36:57Z",
  };
  act(() =>
    socket.push("portfolio_update", {
      ...figures,
      positions_updated: [
        { symbol: "AAPL", quantity: 2, current_price: 200, current_value: 400, daily_change: 4 },
        { symbol: "NVDA", quantity: 3, current_price: 200, current_value: 600, daily_change: 6 },
      ],
    }),
  );
  act(() =>
    socket.push("portfolio_update", {
      ...figures,
      total_value: 1030,
      value_changed: true,
      positions_updated: [{ symbol: "NVDA", quantity: 3, current_price: 210, current_value: 630, daily_change: 36 }],
    }),
  );
  let portfolio = seen.current.portfolios[1];
  assert.equal(portfolio.total_value, 1030);
  assert.equal(portfolio.positions_updated, undefined);
  assert.deepEqual(Object.keys(portfolio.positions).sort(), ["AAPL", "NVDA"]);
  assert.equal(portfolio.positions.AAPL.current_value, 400);
  assert.equal(portfolio.positions.NVDA.current_value, 630);

  act(() =>
    socket.push("position_update", {
      portfolio_id: 1,
      symbol: "NVDA",
      quantity: 3,
      current_price: 231,
      current_value: 693,
      daily_change: 99,
      total_return: 90,
      total_return_percent: 15,
      significant_change: true,
    }),
  );
  act(() => socket.push("position_update", { portfolio_id: 7, symbol: "X", current_price: 1 }));
  portfolio = seen.current.portfolios[1];
  assert.equal(portfolio.positions.NVDA.current_price, 231);
  assert.equal(portfolio.positions.NVDA.significant_change, true);
  assert.deepEqual(Object.keys(seen.current.portfolios), ["1"], "an unwatched portfolio is not kept");

  for (const message of ["one", "two", "three"]) act(() => socket.push("notification", { message }));
  assert.deepEqual(
    seen.current.notifications.map((n) => n.message),
    ["two", "three"],
  );
  assert.equal(seen.current.notifications[0].timestamp, "2026-12-05T22:36:12Z");
  act(() => seen.current.clearNotifications());
  assert.deepEqual(seen.current.notifications, []);
});

for (const code of [4401, 4403]) {
  test(`after ${code} the tree never reconnects on its own`, () => {
    const { seen, Probe } = probe({ assets: ["AAPL"] });
    const tree = () => h(TickerflowProvider, { options: clientOptions() }, h(Probe));
    const { rerender } = render(tree());
    act(() => FakeSocket.last.welcome());
    act(() => FakeSocket.last.serverClose(code));
    assert.equal(seen.current.status, "signed_out");
    act(() => timers.advance(10 * 60_000));
    rerender(tree());
    act(() => timers.advance(10 * 60_000));
    assert.equal(seen.current.reconnect(), false);
    assert.equal(FakeSocket.instances.length, 1);
    assert.equal(seen.current.status, "signed_out");
  });
}

test("any other close reconnects with backoff and re-subscribes", () => {
  const { seen, Probe } = probe({ assets: ["AAPL"] });
  render(h(TickerflowProvider, { options: clientOptions() }, h(Probe)));
  act(() => FakeSocket.last.welcome());
  act(() => FakeSocket.last.serverClose(1006));
  assert.equal(seen.current.status, "reconnecting");
  act(() => timers.advance(1_000));
  assert.equal(FakeSocket.instances.length, 2);
  act(() => FakeSocket.last.welcome());
  assert.equal(seen.current.status, "connected");
  assert.deepEqual(FakeSocket.last.sentOfType("subscribe_asset"), [{ symbol: "AAPL" }]);
});

test("a hook outside any provider owns its client and closes it on unmount", () => {
  const { seen, Probe } = probe({ ...clientOptions(), assets: ["MSFT"] });
  const { unmount } = render(h(Probe));
  assert.equal(FakeSocket.instances.length, 1);
  act(() => FakeSocket.last.welcome());
  assert.equal(seen.current.isConnected, true);
  assert.equal(seen.current.connectionId, "c1");
  unmount();
  assert.equal(FakeSocket.last.readyState, 3);
  timers.advance(10 * 60_000);
  assert.equal(FakeSocket.instances.length, 1);
});

test("what a component subscribes to through the hook is released when it unmounts", () => {
  const { seen, Probe } = probe({});
  const tree = (mounted) => h(TickerflowProvider, { options: clientOptions() }, mounted ? h(Probe) : null);
  const { rerender } = render(tree(true));
  const socket = FakeSocket.last;
  act(() => socket.welcome());
  let stop;
  act(() => {
    stop = seen.current.subscribeToAsset("nvda");
  });
  assert.deepEqual(socket.sentOfType("subscribe_asset"), [{ symbol: "NVDA" }]);
  act(() => stop());
  assert.deepEqual(socket.sentOfType("unsubscribe_asset"), [{ symbol: "NVDA" }]);
  act(() => {
    seen.current.subscribeToPortfolio("3");
    seen.current.subscribeToAsset("NVDA");
    seen.current.subscribeToAsset("NVDA"); // once per component
  });
  act(() => seen.current.unsubscribeFromPortfolio(3));
  assert.deepEqual(socket.sentOfType("unsubscribe_portfolio"), [{ portfolio_id: 3 }]);
  rerender(tree(false));
  assert.deepEqual(socket.sentOfType("unsubscribe_asset"), [{ symbol: "NVDA" }, { symbol: "NVDA" }]);
  assert.equal(socket.readyState, 1, "the provider's client stays open");
});

test("under StrictMode's double effects one socket stays open with one subscription each", () => {
  render(h(StrictMode, null, h(TickerflowProvider, { options: clientOptions() }, h(Price, { symbol: "AAPL" }))));
  const open = FakeSocket.instances.filter((s) => s.readyState !== 3);
  assert.equal(open.length, 1);
  act(() => open[0].welcome());
  assert.deepEqual(open[0].sentOfType("subscribe_asset"), [{ symbol: "AAPL" }]);
});

test("usePersonalFinanceWebSocket is the reference client's name for the hook", () => {
  assert.equal(usePersonalFinanceWebSocket, useTickerflow);
});
