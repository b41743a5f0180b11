export * from "./tickerflow-client.js";
export { default } from "./tickerflow-client.js";
