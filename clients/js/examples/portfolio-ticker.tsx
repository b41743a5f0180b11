// A small dashboard with the React hook; type-checked by `npm test` (tsc --noEmit).
import { TickerflowProvider, usePersonalFinanceWebSocket, useTickerflow } from "@tickerflow/client/react";

function Price({ symbol }: { symbol: string }) {
  const { prices } = useTickerflow({ assets: [symbol] });
  const quote = prices[symbol];
  return (
    <li>
      {symbol}: {quote ? quote.price.toFixed(2) : "..."} ({quote?.change_percent ?? 0} %)
    </li>
  );
}

function Portfolio({ id }: { id: number }) {
  const { portfolios, status } = usePersonalFinanceWebSocket({ portfolios: [id] });
  const portfolio = portfolios[id];
  if (status === "signed_out") return <p>Please sign in again.</p>;
  if (!portfolio) return <p>Loading portfolio {id}...</p>;
  return (
    <section>
      <h2>
        {portfolio.name}: {portfolio.total_value} ({portfolio.daily_change_percent} % today)
      </h2>
      <ul>
        {Object.values(portfolio.positions).map((p) => (
          <li key={p.symbol}>
            {p.symbol} x {p.quantity} = {p.current_value ?? "unpriced"}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Watchlist() {
  const { subscribeToAsset, notifications, clearNotifications } = useTickerflow();
  return (
    <div>
      <button type="button" onClick={() => subscribeToAsset("NVDA")}>
        Watch NVDA
      </button>
      <button type="button" onClick={clearNotifications}>
        Clear {notifications.length} notifications
      </button>
    </div>
  );
}

export function App({ token }: { token?: string }) {
  return (
    <TickerflowProvider options={{ url: "wss://tickerflow.example.com/ws/realtime/", token }}>
      <Portfolio id={1} />
      <ul>
        <Price symbol="AAPL" />
        <Price symbol="MSFT" />
      </ul>
      <Watchlist />
    </TickerflowProvider>
  );
}
