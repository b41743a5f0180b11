// The client in Node with a token; type-checked by `npm test` (tsc --noEmit).
import { Status, TickerflowClient, type WebSocketConstructor } from "@tickerflow/client";

export function watch(WebSocket: WebSocketConstructor, token: string): TickerflowClient {
  const client = new TickerflowClient({
    url: "wss://tickerflow.example.com/ws/realtime/",
    token,
    WebSocket,
    onStatusChange: (status) => {
      if (status === Status.SIGNED_OUT) console.error("the token was revoked");
    },
  });
  client.onMessageType("asset_update", (quote) => console.log(quote.symbol, quote.price));
  client.onMessageType("portfolio_update", (p) => console.log(p.name, p.total_value));
  client.subscribeToAsset("AAPL");
  client.subscribeToPortfolio(1);
  client.connect();
  return client;
}
