// Unit tests of the client's connection logic with a fake WebSocket and fake timers.
// Run: node --test tests/browser/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  TickerflowClient,
  Status,
  backoffDelay,
  normalizeSymbol,
} from "../../../backend/dashboard/static/dashboard/tickerflow-client.js";

class FakeSocket {
  static instances = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.instances.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000) {
    this.serverClose(code);
  }
  // What the server does:
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(message) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  welcome(seq = 1) {
    this.open();
    this.receive({ type: "connection", data: { status: "connected", connection_id: "c1" }, seq });
  }
  serverClose(code) {
    this.readyState = 3;
    this.onclose?.({ code, wasClean: code === 1000 });
  }
}

class FakeTimers {
  constructor() {
    this.now = 0;
    this.nextId = 1;
    this.pending = new Map();
  }
  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.pending.set(id, { fn, at: this.now + ms, every: null });
    return id;
  }
  setInterval(fn, ms) {
    const id = this.nextId++;
    this.pending.set(id, { fn, at: this.now + ms, every: ms });
    return id;
  }
  clearTimeout(id) {
    this.pending.delete(id);
  }
  clearInterval(id) {
    this.pending.delete(id);
  }
  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.pending.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, timer] = due;
      this.now = timer.at;
      if (timer.every) timer.at += timer.every;
      else this.pending.delete(id);
      timer.fn();
    }
    this.now = until;
  }
}

function makeClient(extra = {}) {
  FakeSocket.instances = [];
  const timers = new FakeTimers();
  extra = { now: () => timers.now, ...extra };
  const statuses = [];
  const client = new TickerflowClient({
    url: "ws://test/ws/realtime/",
    WebSocket: FakeSocket,
    timers,
    random: () => 0.5,
    onStatusChange: (s) => statuses.push(s),
    ...extra,
  });
  return { client, timers, statuses, sockets: FakeSocket.instances };
}

test("backoff is full jitter: uniform below base * 2^attempt, capped at 30 s", () => {
  assert.equal(backoffDelay(0, { random: () => 0.999 }), 999);
  assert.equal(backoffDelay(3, { random: () => 0.5 }), 4000);
  assert.equal(backoffDelay(20, { random: () => 0.999999 }), 29999);
  assert.equal(backoffDelay(5, { random: () => 0 }), 0);
});

test("symbols are upper-cased and checked against the protocol's alphabet", () => {
  assert.equal(normalizeSymbol(" brk/b "), "BRK/B");
  assert.equal(normalizeSymbol("^gspc"), "^GSPC");
  assert.equal(normalizeSymbol("AAPL!"), null);
  assert.equal(normalizeSymbol(""), null);
  assert.equal(normalizeSymbol("A".repeat(21)), null);
});

test("subscriptions made before the connection are sent once the server says connected", () => {
  const { client, sockets } = makeClient();
  client.subscribeToAsset("aapl");
  client.subscribeToPortfolio("7");
  client.connect();
  sockets[0].open();
  assert.deepEqual(sockets[0].sent, []);
  sockets[0].receive({ type: "connection", data: { connection_id: "c1" }, seq: 1 });
  assert.deepEqual(sockets[0].sent, [
    { type: "subscribe_asset", data: { symbol: "AAPL" } },
    { type: "subscribe_portfolio", data: { portfolio_id: 7 } },
  ]);
  assert.equal(client.status, Status.CONNECTED);
});

test("it pings every 30 seconds while connected", () => {
  const { client, timers, sockets } = makeClient();
  client.connect();
  sockets[0].welcome();
  timers.advance(90_000);
  assert.equal(sockets[0].sent.filter((m) => m.type === "ping").length, 3);
  assert.deepEqual(sockets[0].sent[0], { type: "ping", data: {} });
});

test("after an unexpected close it reconnects with growing jittered delays and re-subscribes everything", () => {
  const { client, timers, statuses, sockets } = makeClient();
  client.connect();
  sockets[0].welcome();
  client.subscribeToAsset("MSFT");
  client.subscribeToPortfolio(3);
  client.unsubscribeFromAsset("MSFT");
  client.subscribeToAsset("NVDA");

  sockets[0].serverClose(1006);
  assert.equal(client.status, Status.RECONNECTING);
  assert.equal(client.nextDelay, 500); // attempt 0: 0.5 * 1000
  timers.advance(499);
  assert.equal(sockets.length, 1);
  timers.advance(1);
  assert.equal(sockets.length, 2);

  sockets[1].serverClose(1006); // still down
  assert.equal(client.nextDelay, 1000); // attempt 1: 0.5 * 2000
  timers.advance(1000);
  sockets[2].serverClose(1006);
  assert.equal(client.nextDelay, 2000);
  timers.advance(2000);

  sockets[3].welcome();
  assert.equal(client.status, Status.CONNECTED);
  assert.equal(client.reconnectAttempts, 0);
  assert.deepEqual(sockets[3].sent, [
    { type: "subscribe_portfolio", data: { portfolio_id: 3 } },
    { type: "subscribe_asset", data: { symbol: "NVDA" } },
  ]);
  assert.deepEqual(statuses, [Status.CONNECTING, Status.CONNECTED, Status.RECONNECTING, Status.CONNECTED]);
});

test("the reconnect delay never exceeds 30 seconds when servers answer and close", () => {
  const { client, timers, sockets } = makeClient({ random: () => 0.999999 });
  client.connect();
  for (let i = 0; i < 12; i += 1) {
    sockets.at(-1).open(); // accepted, then closed: the server is up but failing
    sockets.at(-1).serverClose(1011);
    assert.ok(client.nextDelay < 30_000, `delay ${client.nextDelay}`);
    timers.advance(client.nextDelay);
  }
  assert.ok(client.nextDelay > 29_000);
});

test("while attempts are refused before reaching a server the delay stays under 4 seconds", () => {
  const { client, timers, sockets } = makeClient({ random: () => 0.999999 });
  client.connect();
  sockets[0].welcome();
  sockets[0].serverClose(1006); // the web process went away
  for (let i = 0; i < 12; i += 1) {
    assert.ok(client.nextDelay < 4_000, `delay ${client.nextDelay}`);
    timers.advance(client.nextDelay);
    sockets.at(-1).serverClose(1006); // refused: never opened
  }
  assert.ok(client.nextDelay > 3_900);
  timers.advance(client.nextDelay);
  sockets.at(-1).welcome(); // back: the attempts start over
  assert.equal(client.status, Status.CONNECTED);
  assert.equal(client.reconnectAttempts, 0);
});

for (const code of [4401, 4403]) {
  test(`close code ${code} means signed out: no reconnect`, () => {
    const { client, timers, sockets } = makeClient();
    client.connect();
    sockets[0].open();
    sockets[0].serverClose(code);
    assert.equal(client.status, Status.SIGNED_OUT);
    timers.advance(120_000);
    assert.equal(sockets.length, 1);
  });
}

test("disconnect() closes for good", () => {
  const { client, timers, sockets } = makeClient();
  client.connect();
  sockets[0].welcome();
  client.disconnect();
  timers.advance(120_000);
  assert.equal(sockets.length, 1);
  assert.equal(client.status, Status.DISCONNECTED);
});

test("a seq gap re-subscribes everything so the server sends fresh snapshots", () => {
  const gaps = [];
  const { client, sockets } = makeClient({ onGap: (gap) => gaps.push(gap) });
  client.subscribeToPortfolio(1);
  client.subscribeToAsset("AAPL");
  client.connect();
  sockets[0].welcome(1);
  sockets[0].sent.length = 0;
  sockets[0].receive({ type: "asset_update", data: { symbol: "AAPL", price: 1 }, seq: 2 });
  assert.deepEqual(sockets[0].sent, []);
  sockets[0].receive({ type: "asset_update", data: { symbol: "AAPL", price: 2 }, seq: 5 });
  assert.deepEqual(gaps, [{ expected: 3, received: 5 }]);
  assert.deepEqual(
    sockets[0].sent.map((m) => m.type),
    ["subscribe_portfolio", "subscribe_asset"],
  );
  sockets[0].receive({ type: "pong", data: {}, seq: 6 });
  assert.equal(gaps.length, 1);
});

test("a new connection restarts the seq count without counting a gap", () => {
  const gaps = [];
  const { client, timers, sockets } = makeClient({ onGap: (gap) => gaps.push(gap) });
  client.connect();
  sockets[0].welcome(1);
  sockets[0].receive({ type: "pong", data: {}, seq: 2 });
  sockets[0].serverClose(1006);
  timers.advance(client.nextDelay);
  sockets[1].welcome(1);
  sockets[1].receive({ type: "pong", data: {}, seq: 2 });
  assert.deepEqual(gaps, []);
});

test("onMessageType handlers get data and envelope, and can be removed", () => {
  const { client, sockets } = makeClient();
  const seen = [];
  const off = client.onMessageType("asset_update", (data, envelope) => seen.push([data.price, envelope.seq]));
  client.connect();
  sockets[0].welcome();
  sockets[0].receive({ type: "asset_update", data: { price: 10 }, seq: 2 });
  off();
  sockets[0].receive({ type: "asset_update", data: { price: 11 }, seq: 3 });
  assert.deepEqual(seen, [[10, 2]]);
});

test("server errors reach onError with their code", () => {
  const errors = [];
  const { client, sockets } = makeClient({ onError: (e) => errors.push(e) });
  client.connect();
  sockets[0].welcome();
  sockets[0].receive({ type: "error", data: { code: "invalid_symbol", message: "bad" }, seq: 2 });
  assert.equal(errors[0].code, "invalid_symbol");
});

test("reconnectNow skips the backoff wait, and does nothing while connected", () => {
  const { client, timers, sockets } = makeClient({ random: () => 0.99 });
  client.connect();
  sockets[0].welcome();
  assert.equal(client.reconnectNow(), false);
  sockets[0].serverClose(1006);
  assert.equal(sockets.length, 1);
  assert.equal(client.reconnectNow(), true);
  assert.equal(sockets.length, 2);
  timers.advance(60_000); // the cancelled timer must not open a third socket
  assert.equal(sockets.length, 2);
});

test("a burst of gaps re-subscribes once now and once more at the end of the window", () => {
  const { client, timers, sockets } = makeClient();
  client.subscribeToAsset("AAPL");
  client.connect();
  sockets[0].welcome(1);
  timers.advance(10_000);
  sockets[0].sent.length = 0;
  const subscribes = () => sockets[0].sent.filter((m) => m.type === "subscribe_asset").length;
  sockets[0].receive({ type: "pong", data: {}, seq: 4 }); // gap: re-sync at once
  assert.equal(subscribes(), 1);
  sockets[0].receive({ type: "pong", data: {}, seq: 7 }); // gap within 5 s: deferred
  sockets[0].receive({ type: "pong", data: {}, seq: 9 }); // folded into the deferred one
  assert.equal(subscribes(), 1);
  timers.advance(5_000);
  assert.equal(subscribes(), 2);
  timers.advance(60_000);
  assert.equal(subscribes(), 2);
});
