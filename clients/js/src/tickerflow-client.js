// Tickerflow real-time client: a static ES module, no build step.
//
// The one copy: the npm package in clients/js publishes this file, and the dashboard serves
// it as /static/dashboard/tickerflow-client.js (a symlink to here). Types: tickerflow-client.d.ts.
//
// Speaks the /ws/realtime/ protocol (docs/protocol.md) with the API shape
// of the PersonalFinanceWebSocket reference client: connect / disconnect, subscribeToAsset,
// unsubscribeFromAsset, subscribeToPortfolio, unsubscribeFromPortfolio, onMessageType, and
// the onConnect / onDisconnect / onError / onStatusChange callbacks.
//
// What it adds to the seed, and why:
// - Subscriptions are remembered as intent, not only when sent: a subscribe made while
//   offline is sent on connect, and everything is re-sent after a reconnect (the server
//   forgets a closed connection's groups).
// - Reconnects use exponential backoff with full jitter capped at 30 s, so a restarted
//   server is not hit by every browser at the same instant; capped at 4 s while attempts are
//   refused before any server answers, so a client is back within seconds of a restart.
// - Close codes 4401/4403 mean the session is gone or forbidden: retrying cannot help, so
//   the client stops and reports "signed_out".
// - Every server message carries `seq` (1, 2, 3... per connection). A gap means messages
//   were lost; the client re-subscribes, and the server answers each subscribe with a fresh
//   snapshot, so the screen is whole again.

export const Status = Object.freeze({
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  SIGNED_OUT: "signed_out",
  DISCONNECTED: "disconnected",
});

export const SIGNED_OUT_CODES = new Set([4401, 4403]);
export const PING_INTERVAL_MS = 30_000;
export const BASE_DELAY_MS = 1_000;
export const MAX_DELAY_MS = 30_000;
// While no attempt reaches a server (refused: the web process is restarting, the network is
// down) the wait stays short: a refused connect costs the server nothing, and the client is
// back within seconds of the server. Once a server accepted and closed (1011, 4429), it is
// up but struggling: the full backoff applies.
export const UNREACHED_MAX_DELAY_MS = 4_000;
// Re-subscribing costs one message per subscription against the server's per-connection
// rate limit: a burst of gaps must cause one re-sync, not one per gap.
export const MIN_RESYNC_INTERVAL_MS = 5_000;
export const SYMBOL_PATTERN = /^[A-Z0-9.\-^=/]{1,20}$/;

const OPEN = 1;
const NORMAL_CLOSURE = 1000;

/** Full-jitter backoff: a uniform delay in [0, min(max, base * 2^attempt)). */
export function backoffDelay(attempt, { baseDelay = BASE_DELAY_MS, maxDelay = MAX_DELAY_MS, random = Math.random } = {}) {
  const ceiling = Math.min(maxDelay, baseDelay * 2 ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}

/** Upper-cases and checks a symbol; returns it, or null when it is malformed. */
export function normalizeSymbol(raw) {
  const symbol = String(raw ?? "").trim().toUpperCase();
  return SYMBOL_PATTERN.test(symbol) ? symbol : null;
}

export function defaultUrl(location = globalThis.location) {
  if (!location || !location.host) {
    throw new TypeError("TickerflowClient: pass options.url outside a browser page");
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/realtime/`;
}

const noop = () => {};

export class TickerflowClient {
  constructor(options = {}) {
    this.url = options.url || defaultUrl();
    this.pingInterval = options.pingInterval ?? PING_INTERVAL_MS;
    this.baseDelay = options.baseDelay ?? BASE_DELAY_MS;
    this.maxDelay = options.maxDelay ?? MAX_DELAY_MS;
    this.unreachedMaxDelay = options.unreachedMaxDelay ?? UNREACHED_MAX_DELAY_MS;
    this.random = options.random || Math.random;
    this.now = options.now || (() => Date.now());
    this.minResyncInterval = options.minResyncInterval ?? MIN_RESYNC_INTERVAL_MS;
    this.WebSocketImpl = options.WebSocket || globalThis.WebSocket;
    // Outside a browser (Node with the `ws` package, or Node 22's WebSocket) a token admits
    // the connection: sent as `Authorization: Token <key>` on the handshake. A browser cannot
    // set handshake headers; it uses the session cookie.
    const headers = { ...(options.headers || {}) };
    if (options.token) headers.Authorization = `Token ${options.token}`;
    this.socketOptions = Object.keys(headers).length ? { headers } : null;
    this.timers = options.timers || {
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (id) => globalThis.clearTimeout(id),
      setInterval: (fn, ms) => globalThis.setInterval(fn, ms),
      clearInterval: (id) => globalThis.clearInterval(id),
    };

    this.onConnect = options.onConnect || noop;
    this.onDisconnect = options.onDisconnect || noop;
    this.onError = options.onError || noop;
    this.onStatusChange = options.onStatusChange || noop;
    this.onMessage = options.onMessage || noop;
    this.onGap = options.onGap || noop;

    this.socket = null;
    this.status = Status.DISCONNECTED;
    this.isConnected = false;
    this.connectionId = null;
    this.lastSeq = 0;
    this.reconnectAttempts = 0;
    this.nextDelay = null;
    this.gaps = 0;
    this.subscriptions = new Map(); // "asset:AAPL" | "portfolio:3" -> [type, data]
    this.handlers = new Map(); // message type -> Set of handlers
    this.wantOpen = false;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.resyncTimer = null;
    this.lastResync = -Infinity;
  }

  // --- connection -------------------------------------------------------------------

  connect() {
    this.wantOpen = true;
    this._clearReconnect();
    if (this.socket) return;
    this._open();
  }

  disconnect() {
    this.wantOpen = false;
    this._clearReconnect();
    this._stopPing();
    this._cancelResync();
    const socket = this.socket;
    this.socket = null;
    this.isConnected = false;
    if (socket) socket.close(NORMAL_CLOSURE);
    this._setStatus(Status.DISCONNECTED);
  }

  /** Skips the remaining backoff wait (the browser says it is online again). */
  reconnectNow() {
    if (!this.wantOpen || this.socket || this.reconnectTimer === null) return false;
    this._clearReconnect();
    this._open();
    return true;
  }

  _open() {
    this._setStatus(this.reconnectAttempts > 0 ? Status.RECONNECTING : Status.CONNECTING);
    let socket;
    try {
      socket = this.socketOptions
        ? new this.WebSocketImpl(this.url, this.socketOptions)
        : new this.WebSocketImpl(this.url);
    } catch (error) {
      this.onError(error);
      this._scheduleReconnect(false);
      return;
    }
    let reached = false;
    this.socket = socket;
    this.lastSeq = 0;
    this.connectionId = null;
    // Handlers check `socket === this.socket`: events of a replaced socket are stale.
    socket.onopen = () => {
      reached = true;
      if (socket === this.socket) this._startPing();
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        this.onError(error);
        return;
      }
      this._handle(message);
    };
    socket.onerror = (event) => {
      if (socket === this.socket) this.onError(event);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.isConnected = false;
      this.connectionId = null;
      this._stopPing();
      this._cancelResync();
      this.onDisconnect(event);
      if (SIGNED_OUT_CODES.has(event.code)) {
        this.wantOpen = false;
        this._setStatus(Status.SIGNED_OUT);
        return;
      }
      if (!this.wantOpen) {
        this._setStatus(Status.DISCONNECTED);
        return;
      }
      this._scheduleReconnect(reached);
    };
  }

  _scheduleReconnect(reachedServer) {
    if (!this.wantOpen) return;
    this.nextDelay = backoffDelay(this.reconnectAttempts, {
      baseDelay: this.baseDelay,
      maxDelay: reachedServer ? this.maxDelay : Math.min(this.maxDelay, this.unreachedMaxDelay),
      random: this.random,
    });
    this.reconnectAttempts += 1;
    this._setStatus(Status.RECONNECTING);
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = null;
      if (this.wantOpen && !this.socket) this._open();
    }, this.nextDelay);
  }

  _clearReconnect() {
    if (this.reconnectTimer !== null) {
      this.timers.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
  }

  _startPing() {
    this._stopPing();
    this.pingTimer = this.timers.setInterval(() => this.send("ping", {}), this.pingInterval);
  }

  _stopPing() {
    if (this.pingTimer !== null) {
      this.timers.clearInterval(this.pingTimer);
      this.pingTimer = null;
    }
  }

  _setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.onStatusChange(status);
  }

  // --- messages ---------------------------------------------------------------------

  _handle(message) {
    if (typeof message.seq === "number") {
      const expected = this.lastSeq + 1;
      this.lastSeq = message.seq;
      if (message.seq !== expected && message.type !== "connection") {
        this.gaps += 1;
        this.onGap({ expected, received: message.seq });
        this._resync();
      }
    }
    if (message.type === "connection") {
      this.connectionId = message.data?.connection_id ?? null;
      this.isConnected = true;
      this.reconnectAttempts = 0;
      this.nextDelay = null;
      this._setStatus(Status.CONNECTED);
      this.resubscribeAll();
      this.onConnect(message.data);
    } else if (message.type === "error") {
      this.onError({ type: "server", ...(message.data || {}) });
    }
    for (const key of [message.type, "*"]) {
      const handlers = this.handlers.get(key);
      if (!handlers) continue;
      for (const handler of [...handlers]) {
        try {
          handler(message.data, message);
        } catch (error) {
          this.onError(error);
        }
      }
    }
    this.onMessage(message);
  }

  /** Sends `{"type", "data"}` when the socket is open; returns whether it was sent. */
  send(type, data = {}) {
    if (!this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify({ type, data }));
    return true;
  }

  /** Registers a handler for one message type ("*" for all); returns a function that removes it. */
  onMessageType(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type)?.delete(handler);
  }

  // --- subscriptions ----------------------------------------------------------------

  _subscribe(key, type, data) {
    this.subscriptions.set(key, [type, data]);
    return this.isConnected ? this.send(type, data) : false;
  }

  _unsubscribe(key, type, data) {
    const had = this.subscriptions.delete(key);
    return had && this.isConnected ? this.send(type, data) : false;
  }

  subscribeToAsset(symbol) {
    const clean = String(symbol).trim().toUpperCase();
    return this._subscribe(`asset:${clean}`, "subscribe_asset", { symbol: clean });
  }

  unsubscribeFromAsset(symbol) {
    const clean = String(symbol).trim().toUpperCase();
    return this._unsubscribe(`asset:${clean}`, "unsubscribe_asset", { symbol: clean });
  }

  subscribeToPortfolio(portfolioId) {
    const id = Number(portfolioId);
    return this._subscribe(`portfolio:${id}`, "subscribe_portfolio", { portfolio_id: id });
  }

  unsubscribeFromPortfolio(portfolioId) {
    const id = Number(portfolioId);
    return this._unsubscribe(`portfolio:${id}`, "unsubscribe_portfolio", { portfolio_id: id });
  }

  /** Re-subscribes after a gap, at most once per minResyncInterval (later gaps in the
   * window fold into one re-sync at its end). */
  _resync() {
    if (this.resyncTimer !== null) return;
    const wait = this.lastResync + this.minResyncInterval - this.now();
    const run = () => {
      this.resyncTimer = null;
      this.lastResync = this.now();
      this.resubscribeAll();
    };
    if (wait <= 0) run();
    else this.resyncTimer = this.timers.setTimeout(run, wait);
  }

  _cancelResync() {
    if (this.resyncTimer !== null) {
      this.timers.clearTimeout(this.resyncTimer);
      this.resyncTimer = null;
    }
  }

  /** Re-sends every subscription; the server answers each with a fresh snapshot. */
  resubscribeAll() {
    if (!this.isConnected) return 0;
    let sent = 0;
    for (const [type, data] of this.subscriptions.values()) sent += this.send(type, data) ? 1 : 0;
    return sent;
  }
}

// The reference client's name, for code written against it.
export { TickerflowClient as PersonalFinanceWebSocket };
export default TickerflowClient;
