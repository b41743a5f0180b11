// @tickerflow/client: the real-time client. The React hook is in "@tickerflow/client/react".
export * from "./tickerflow-client.js";
export { default } from "./tickerflow-client.js";
