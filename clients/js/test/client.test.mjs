// The package's entry points and the client's Node-side options.
import assert from "node:assert/strict";
import { existsSync, lstatSync, realpathSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import * as entry from "@tickerflow/client";
import * as react from "@tickerflow/client/react";
import * as direct from "@tickerflow/client/tickerflow-client.js";

import { FakeSocket } from "./fakes.mjs";

test("the entry points export the client, its reference name and the hook", () => {
  assert.equal(typeof entry.TickerflowClient, "function");
  assert.equal(entry.PersonalFinanceWebSocket, entry.TickerflowClient);
  assert.equal(entry.default, entry.TickerflowClient);
  assert.equal(direct.TickerflowClient, entry.TickerflowClient);
  assert.equal(typeof react.useTickerflow, "function");
  assert.equal(react.usePersonalFinanceWebSocket, react.useTickerflow);
  assert.equal(typeof react.TickerflowProvider, "function");
});

test("a token is sent as the handshake's Authorization header", () => {
  FakeSocket.reset();
  new entry.TickerflowClient({ url: "ws://h/ws/realtime/", token: "abc123", WebSocket: FakeSocket }).connect();
  assert.deepEqual(FakeSocket.last.options, { headers: { Authorization: "Token abc123" } });
  new entry.TickerflowClient({ url: "ws://h/ws/realtime/", WebSocket: FakeSocket }).connect();
  assert.equal(FakeSocket.last.options, undefined, "a browser's WebSocket gets no second argument");
});

test("outside a page the url is required", () => {
  assert.throws(() => new entry.TickerflowClient({ WebSocket: FakeSocket }), /options\.url/);
  assert.equal(entry.defaultUrl({ protocol: "https:", host: "t.example" }), "wss://t.example/ws/realtime/");
});

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const dashboardCopy = `${repoRoot}backend/dashboard/static/dashboard/tickerflow-client.js`;

test("the dashboard serves this package's file, not a copy", { skip: !existsSync(dashboardCopy) && "outside the repository" }, () => {
  assert.ok(lstatSync(dashboardCopy).isSymbolicLink());
  const own = fileURLToPath(new URL("../src/tickerflow-client.js", import.meta.url));
  assert.equal(realpathSync(dashboardCopy), realpathSync(own));
});
