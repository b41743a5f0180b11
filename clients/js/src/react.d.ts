// Types of react.js: useTickerflow / usePersonalFinanceWebSocket and <TickerflowProvider>.
import type { ReactNode } from "react";

import type {
  AssetUpdate,
  PortfolioUpdate,
  PositionFigures,
  PositionUpdate,
  ServerError,
  StatusValue,
  TickerflowClient,
  TickerflowClientOptions,
} from "./tickerflow-client.js";

export declare const MAX_NOTIFICATIONS: number;

/** A position as the hook keeps it: the latest figures pushed for it. */
export type PositionState = PositionFigures & Partial<Omit<PositionUpdate, "portfolio_id">>;

/** A portfolio as the hook keeps it: the latest figures, positions merged by symbol. */
export type PortfolioState = Omit<PortfolioUpdate, "positions_updated"> & {
  positions: Record<string, PositionState>;
};

export interface NotificationEntry {
  message: string;
  /** The server's timestamp of the message (ISO-8601 UTC). */
  timestamp: string | null;
  [key: string]: unknown;
}

export interface TickerflowState {
  status: StatusValue;
  connectionId: string | null;
  prices: Record<string, AssetUpdate>;
  portfolios: Record<number, PortfolioState>;
  notifications: NotificationEntry[];
  lastError: ServerError | null;
}

export interface TickerflowStoreOptions extends TickerflowClientOptions {
  /** Use this client instead of creating one. */
  client?: TickerflowClient;
  /** How many notifications are kept (oldest dropped); default 50. */
  maxNotifications?: number;
}

export declare class TickerflowStore {
  constructor(options?: TickerflowStoreOptions);
  readonly client: TickerflowClient;
  readonly signedOut: boolean;
  subscribe(listener: () => void): () => void;
  getSnapshot(): TickerflowState;
  /** Connects, unless the server signed this tree out (4401/4403); returns whether it did. */
  start(): boolean;
  stop(): void;
  /** Holds a subscription (counted per store); returns the function that lets go of it. */
  holdAsset(symbol: string): () => void;
  holdPortfolio(portfolioId: number | string): () => void;
  /** How many holders a subscription has. */
  holders(kind: "asset" | "portfolio", value: string | number): number;
  clearNotifications(): void;
}

export interface TickerflowProviderProps {
  /** Client options (url, token, WebSocket, ...); read once, when the provider mounts. */
  options?: TickerflowStoreOptions;
  client?: TickerflowClient;
  store?: TickerflowStore;
  children?: ReactNode;
}

/** Shares one client (one WebSocket) with every useTickerflow below it. */
export declare function TickerflowProvider(props: TickerflowProviderProps): ReactNode;

export declare function useTickerflowStore(): TickerflowStore | null;

export interface UseTickerflowOptions extends TickerflowStoreOptions {
  /** Symbols this component watches while mounted. */
  assets?: readonly string[];
  /** Portfolio ids this component watches while mounted. */
  portfolios?: readonly (number | string)[];
}

export interface UseTickerflowResult {
  status: StatusValue;
  isConnected: boolean;
  connectionId: string | null;
  /** The latest `asset_update` per watched symbol. */
  prices: Record<string, AssetUpdate>;
  /** The latest figures per watched portfolio. */
  portfolios: Record<number, PortfolioState>;
  notifications: NotificationEntry[];
  lastError: ServerError | null;
  /** Subscribes for as long as this component is mounted; returns the function that unsubscribes. */
  subscribeToAsset(symbol: string): () => void;
  unsubscribeFromAsset(symbol: string): void;
  subscribeToPortfolio(portfolioId: number | string): () => void;
  unsubscribeFromPortfolio(portfolioId: number | string): void;
  clearNotifications(): void;
  /** Skips the backoff wait (never after a 4401/4403); true when an attempt started. */
  reconnect(): boolean;
  client: TickerflowClient;
}

/**
 * Live prices, portfolio figures and notifications. Under a <TickerflowProvider> every hook
 * shares its client; outside one, the hook owns a client for the component's life. Client
 * options are read once, at mount.
 */
export declare function useTickerflow(options?: UseTickerflowOptions): UseTickerflowResult;

/** The reference client's name for useTickerflow. */
export declare const usePersonalFinanceWebSocket: typeof useTickerflow;
