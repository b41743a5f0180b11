// React bindings: useTickerflow(options) (alias usePersonalFinanceWebSocket) and
// <TickerflowProvider>. Types: react.d.ts.
//
// - One client per component tree: every hook under a <TickerflowProvider> shares its
//   client (one WebSocket); a hook outside any provider owns a client of its own.
// - Subscriptions live with the component: the `assets` / `portfolios` options, and whatever
//   the component subscribes to through the hook, are released when it unmounts. They are
//   counted per tree, so one symbol watched by three components is subscribed once and
//   unsubscribed when the last of them goes.
// - After a 4401/4403 close (signed out, forbidden) the client stops and the tree never
//   reconnects on its own, not on re-render nor on remount: the user has to sign in again.

import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";

import { Status, TickerflowClient } from "./tickerflow-client.js";

export const MAX_NOTIFICATIONS = 50;

const assetKey = (symbol) => String(symbol).trim().toUpperCase();
const portfolioKey = (id) => Number(id);

function positionsBySymbol(list, into = {}) {
  const out = { ...into };
  for (const position of list || []) out[position.symbol] = { ...out[position.symbol], ...position };
  return out;
}

/** The state behind the hook: one client, ref-counted subscriptions, the latest values. */
export class TickerflowStore {
  constructor(options = {}) {
    const { client, maxNotifications, ...clientOptions } = options;
    this.client = client || new TickerflowClient(clientOptions);
    this.maxNotifications = maxNotifications ?? MAX_NOTIFICATIONS;
    this.counts = new Map(); // "asset:AAPL" | "portfolio:3" -> holders
    this.listeners = new Set();
    this.signedOut = false;
    this.running = false;
    this.state = {
      status: this.client.status,
      connectionId: null,
      prices: {},
      portfolios: {},
      notifications: [],
      lastError: null,
    };
    this.subscribe = this.subscribe.bind(this);
    this.getSnapshot = this.getSnapshot.bind(this);

    const previous = this.client.onStatusChange;
    this.client.onStatusChange = (status) => {
      if (status === Status.SIGNED_OUT) this.signedOut = true;
      this._set({ status, connectionId: this.client.connectionId });
      previous.call(this.client, status);
    };
    const c = this.client;
    this.detach = [
      c.onMessageType("connection", (data) => this._set({ connectionId: data?.connection_id ?? null })),
      c.onMessageType("asset_update", (data) => this._asset(data)),
      c.onMessageType("portfolio_update", (data) => this._portfolio(data)),
      c.onMessageType("position_update", (data) => this._position(data)),
      c.onMessageType("notification", (data, message) => this._notification(data, message)),
      c.onMessageType("error", (data) => this._error(data)),
    ];
  }

  // --- external store (useSyncExternalStore) ---------------------------------------

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  getSnapshot() {
    return this.state;
  }

  _set(patch) {
    const changed = Object.keys(patch).some((key) => this.state[key] !== patch[key]);
    if (!changed) return;
    this.state = { ...this.state, ...patch };
    for (const listener of [...this.listeners]) listener();
  }

  // --- life ---------------------------------------------------------------------------

  /** Connects, unless the server signed this tree out (4401/4403). */
  start() {
    if (this.signedOut) return false;
    this.running = true;
    this.client.connect();
    return true;
  }

  stop() {
    this.running = false;
    this.client.disconnect();
  }

  // --- ref-counted subscriptions ------------------------------------------------------

  _hold(key, subscribe, unsubscribe) {
    const count = this.counts.get(key) || 0;
    this.counts.set(key, count + 1);
    if (count === 0) subscribe();
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = (this.counts.get(key) || 1) - 1;
      if (left > 0) {
        this.counts.set(key, left);
        return;
      }
      this.counts.delete(key);
      unsubscribe();
    };
  }

  /** Holds a subscription to a symbol; returns the function that lets go of it. */
  holdAsset(symbol) {
    const clean = assetKey(symbol);
    return this._hold(
      `asset:${clean}`,
      () => this.client.subscribeToAsset(clean),
      () => {
        this.client.unsubscribeFromAsset(clean);
        if (clean in this.state.prices) {
          const { [clean]: _gone, ...prices } = this.state.prices;
          this._set({ prices });
        }
      },
    );
  }

  /** Holds a subscription to a portfolio; returns the function that lets go of it. */
  holdPortfolio(portfolioId) {
    const id = portfolioKey(portfolioId);
    return this._hold(
      `portfolio:${id}`,
      () => this.client.subscribeToPortfolio(id),
      () => {
        this.client.unsubscribeFromPortfolio(id);
        if (id in this.state.portfolios) {
          const { [id]: _gone, ...portfolios } = this.state.portfolios;
          this._set({ portfolios });
        }
      },
    );
  }

  holders(kind, value) {
    const key = kind === "asset" ? `asset:${assetKey(value)}` : `portfolio:${portfolioKey(value)}`;
    return this.counts.get(key) || 0;
  }

  // --- incoming -----------------------------------------------------------------------

  _asset(data) {
    if (!data || !data.symbol) return;
    this._set({ prices: { ...this.state.prices, [data.symbol]: data } });
  }

  _portfolio(data) {
    if (!data || data.portfolio_id == null) return;
    const id = data.portfolio_id;
    const previous = this.state.portfolios[id];
    const { positions_updated: moved, ...figures } = data;
    const positions = positionsBySymbol(moved, previous?.positions);
    this._set({ portfolios: { ...this.state.portfolios, [id]: { ...previous, ...figures, positions } } });
  }

  _position(data) {
    const previous = data && this.state.portfolios[data.portfolio_id];
    if (!previous) return; // sent to every connection of the owner; kept only for watched portfolios
    const { portfolio_id: _id, ...position } = data;
    const positions = positionsBySymbol([position], previous.positions);
    this._set({ portfolios: { ...this.state.portfolios, [data.portfolio_id]: { ...previous, positions } } });
  }

  _notification(data, message) {
    const entry = { ...(data || {}), timestamp: message?.timestamp ?? null };
    const notifications = [...this.state.notifications, entry].slice(-this.maxNotifications);
    this._set({ notifications });
  }

  _error(data) {
    this._set({ lastError: data || null });
    if (data?.code === "unknown_symbol" && data.symbol && data.symbol in this.state.prices) {
      const { [data.symbol]: _gone, ...prices } = this.state.prices;
      this._set({ prices });
    }
  }

  clearNotifications() {
    this._set({ notifications: [] });
  }
}

const TickerflowContext = createContext(null);

/** Shares one client (one WebSocket) with every useTickerflow below it. */
export function TickerflowProvider({ options, client, store: given, children }) {
  const [store] = useState(() => given || new TickerflowStore({ ...(options || {}), client }));
  useEffect(() => {
    store.start();
    return () => store.stop();
  }, [store]);
  return createElement(TickerflowContext.Provider, { value: store }, children);
}

/** The store of the nearest provider, or null. */
export function useTickerflowStore() {
  return useContext(TickerflowContext);
}

function useStableList(values, normalize) {
  const list = [...new Set((values || []).map(normalize))].sort();
  const key = JSON.stringify(list);
  return useMemo(() => list, [key]);
}

export function useTickerflow(options = {}) {
  const shared = useContext(TickerflowContext);
  const [own] = useState(() => {
    if (shared) return null;
    const { assets: _assets, portfolios: _portfolios, ...storeOptions } = options;
    return new TickerflowStore(storeOptions);
  });
  const store = shared || own;

  useEffect(() => {
    if (!own) return undefined;
    own.start();
    return () => own.stop();
  }, [own]);

  const state = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);

  // Declarative subscriptions: held while mounted and listed.
  const assets = useStableList(options.assets, assetKey);
  const portfolios = useStableList(options.portfolios, portfolioKey);
  useEffect(() => {
    const releases = [...assets.map((s) => store.holdAsset(s)), ...portfolios.map((p) => store.holdPortfolio(p))];
    return () => releases.forEach((release) => release());
  }, [store, assets, portfolios]);

  // Imperative subscriptions made through this hook: released at unmount at the latest.
  const held = useRef(new Map());
  useEffect(() => {
    const mine = held.current;
    return () => {
      for (const release of mine.values()) release();
      mine.clear();
    };
  }, [store]);

  const hold = useCallback(
    (key, take) => {
      const mine = held.current;
      if (!mine.has(key)) mine.set(key, take());
      return () => {
        const release = mine.get(key);
        mine.delete(key);
        if (release) release();
      };
    },
    [store],
  );
  const letGo = useCallback((key) => {
    const release = held.current.get(key);
    held.current.delete(key);
    if (release) release();
  }, []);

  const subscribeToAsset = useCallback((symbol) => hold(`asset:${assetKey(symbol)}`, () => store.holdAsset(symbol)), [hold, store]);
  const unsubscribeFromAsset = useCallback((symbol) => letGo(`asset:${assetKey(symbol)}`), [letGo]);
  const subscribeToPortfolio = useCallback(
    (id) => hold(`portfolio:${portfolioKey(id)}`, () => store.holdPortfolio(id)),
    [hold, store],
  );
  const unsubscribeFromPortfolio = useCallback((id) => letGo(`portfolio:${portfolioKey(id)}`), [letGo]);
  const clearNotifications = useCallback(() => store.clearNotifications(), [store]);
  const reconnect = useCallback(() => store.client.reconnectNow(), [store]);

  return {
    status: state.status,
    isConnected: state.status === Status.CONNECTED,
    connectionId: state.connectionId,
    prices: state.prices,
    portfolios: state.portfolios,
    notifications: state.notifications,
    lastError: state.lastError,
    subscribeToAsset,
    unsubscribeFromAsset,
    subscribeToPortfolio,
    unsubscribeFromPortfolio,
    clearNotifications,
    reconnect,
    client: store.client,
  };
}

// The reference client's name, for code written against it.
export { useTickerflow as usePersonalFinanceWebSocket };
