// Types of tickerflow-client.js: the /ws/realtime/ protocol (docs/protocol.md in the
// Tickerflow repository) and the client's API.

export type StatusValue = "connecting" | "connected" | "reconnecting" | "signed_out" | "disconnected";

export declare const Status: Readonly<{
  CONNECTING: "connecting";
  CONNECTED: "connected";
  RECONNECTING: "reconnecting";
  SIGNED_OUT: "signed_out";
  DISCONNECTED: "disconnected";
}>;

/** Close codes after which the client stops for good (4401 not authenticated, 4403 forbidden). */
export declare const SIGNED_OUT_CODES: ReadonlySet<number>;
export declare const PING_INTERVAL_MS: number;
export declare const BASE_DELAY_MS: number;
export declare const MAX_DELAY_MS: number;
export declare const UNREACHED_MAX_DELAY_MS: number;
export declare const MIN_RESYNC_INTERVAL_MS: number;
export declare const SYMBOL_PATTERN: RegExp;

/** `asset_update`: a subscribed symbol's latest quote. */
export interface AssetUpdate {
  symbol: string;
  price: number;
  change: number | null;
  change_percent: number | null;
  volume: number | null;
  high: number | null;
  low: number | null;
  market_cap: number | null;
  previous_close: number | null;
  last_updated: string;
  source: string;
}

/** One position inside a `portfolio_update` (`positions_updated`). */
export interface PositionFigures {
  symbol: string;
  quantity: number;
  current_price: number | null;
  current_value: number | null;
  daily_change: number | null;
}

/** `portfolio_update`: a subscribed portfolio's figures (a snapshot lists every position). */
export interface PortfolioUpdate {
  portfolio_id: number;
  name: string;
  total_value: number;
  total_cost: number;
  daily_change: number;
  daily_change_percent: number;
  total_return: number;
  total_return_percent: number;
  value_changed: boolean;
  valued_at: string;
  positions_updated: PositionFigures[];
}

/** `position_update`: sent to the owner when a position's price moved more than 1 %. */
export interface PositionUpdate {
  portfolio_id: number;
  symbol: string;
  quantity: number;
  current_price: number;
  current_value: number;
  daily_change: number;
  total_return: number;
  total_return_percent: number;
  significant_change: boolean;
}

export interface NotificationData {
  message: string;
  [key: string]: unknown;
}

export interface ServerError {
  code: string;
  message: string;
  symbol?: string;
  portfolio_id?: number;
}

export interface ConnectionData {
  status: "connected";
  connection_id: string;
  authenticated: boolean;
  user_id: number;
}

export interface MessageDataByType {
  connection: ConnectionData;
  asset_update: AssetUpdate;
  portfolio_update: PortfolioUpdate;
  position_update: PositionUpdate;
  notification: NotificationData;
  error: ServerError;
  subscribed: { channel: "asset" | "portfolio"; symbol?: string; portfolio_id?: number };
  unsubscribed: { channel: "asset" | "portfolio"; symbol?: string; portfolio_id?: number };
  pong: Record<string, never>;
}

/** Every server message: `{type, data, timestamp, connection_id, seq}`. */
export interface Envelope<T extends string = string, D = unknown> {
  type: T;
  data: D;
  timestamp: string;
  connection_id: string;
  seq: number;
}

export type MessageHandler<D = unknown> = (data: D, message: Envelope<string, D>) => void;

/** What a WebSocket constructor must look like: the browser's, Node 22's, or the `ws` package. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; wasClean?: boolean }) => void) | null;
}

export type WebSocketConstructor = new (url: string, options?: any) => WebSocketLike;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(id: unknown): void;
}

export interface TickerflowClientOptions {
  /** Default in a browser page: ws(s)://<this host>/ws/realtime/. Required elsewhere. */
  url?: string;
  /** Outside a browser: an API token, sent as `Authorization: Token <key>` on the handshake. */
  token?: string;
  /** Extra handshake headers (Node only; a browser cannot set them). */
  headers?: Record<string, string>;
  /** A WebSocket implementation; default `globalThis.WebSocket`. On Node 20 pass `ws`. */
  WebSocket?: WebSocketConstructor;
  pingInterval?: number;
  baseDelay?: number;
  maxDelay?: number;
  /** The cap while no attempt reaches a server (refused, network down); default 4,000 ms. */
  unreachedMaxDelay?: number;
  minResyncInterval?: number;
  random?: () => number;
  now?: () => number;
  timers?: Timers;
  onConnect?: (data: ConnectionData) => void;
  onDisconnect?: (event: { code: number; wasClean?: boolean }) => void;
  onError?: (error: unknown) => void;
  onStatusChange?: (status: StatusValue) => void;
  onMessage?: (message: Envelope) => void;
  onGap?: (gap: { expected: number; received: number }) => void;
}

/** Full-jitter backoff: a uniform delay in [0, min(max, base * 2^attempt)). */
export declare function backoffDelay(
  attempt: number,
  options?: { baseDelay?: number; maxDelay?: number; random?: () => number },
): number;

/** Upper-cases and checks a symbol; returns it, or null when it is malformed. */
export declare function normalizeSymbol(raw: unknown): string | null;

export declare function defaultUrl(location?: { protocol: string; host: string }): string;

export declare class TickerflowClient {
  constructor(options?: TickerflowClientOptions);
  readonly url: string;
  status: StatusValue;
  isConnected: boolean;
  connectionId: string | null;
  lastSeq: number;
  reconnectAttempts: number;
  nextDelay: number | null;
  gaps: number;
  onConnect: (data: ConnectionData) => void;
  onDisconnect: (event: { code: number; wasClean?: boolean }) => void;
  onError: (error: unknown) => void;
  onStatusChange: (status: StatusValue) => void;
  onMessage: (message: Envelope) => void;
  onGap: (gap: { expected: number; received: number }) => void;

  connect(): void;
  disconnect(): void;
  /** Skips the remaining backoff wait; true when a connection attempt started. */
  reconnectNow(): boolean;
  /** Sends `{"type", "data"}` when the socket is open; returns whether it was sent. */
  send(type: string, data?: Record<string, unknown>): boolean;
  /** Registers a handler for one message type ("*" for all); returns a function that removes it. */
  onMessageType<K extends keyof MessageDataByType>(type: K, handler: MessageHandler<MessageDataByType[K]>): () => void;
  onMessageType(type: string, handler: MessageHandler): () => void;

  subscribeToAsset(symbol: string): boolean;
  unsubscribeFromAsset(symbol: string): boolean;
  subscribeToPortfolio(portfolioId: number | string): boolean;
  unsubscribeFromPortfolio(portfolioId: number | string): boolean;
  /** Re-sends every subscription; the server answers each with a fresh snapshot. */
  resubscribeAll(): number;
}

export { TickerflowClient as PersonalFinanceWebSocket };
export default TickerflowClient;
