// The live dashboard: portfolio cards, positions, watchlist, connection indicator.
import { TickerflowClient, Status, normalizeSymbol } from "./tickerflow-client.js";
import { drawSparkline, drawValueChart } from "./charts.js";
import { initAlerts } from "./alerts.js";
import { initPerformance } from "./performance.js";

const SPARK_POINTS = 60;
const CHART_POINTS = 240;
const initial = JSON.parse(document.getElementById("dashboard-initial").textContent);
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

const sparks = new Map(Object.entries(initial.sparklines)); // symbol -> [price]
const charts = new Map(Object.entries(initial.charts).map(([id, pts]) => [Number(id), pts]));
const lastPrice = new Map(); // symbol -> last price shown, for the flash direction
const watchlist = new Set(initial.watchlist.map((w) => w.symbol));

// --- formatting -------------------------------------------------------------------------

const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const price = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 6 });
const fmtMoney = (v) => (v == null ? "…" : money.format(v));
const fmtPrice = (v) => (v == null ? "…" : price.format(Number(v) >= 1 ? Math.round(v * 100) / 100 : v));
const signed = (v) => (v == null ? "…" : `${v > 0 ? "+" : v < 0 ? "−" : ""}${money.format(Math.abs(v))}`);
const pct = (v) => (v == null ? "" : ` (${v > 0 ? "+" : v < 0 ? "−" : ""}${money.format(Math.abs(v))} %)`);

function setSigned(node, value, text) {
  if (!node) return;
  node.textContent = text;
  node.classList.toggle("up", value > 0);
  node.classList.toggle("down", value < 0);
}

// An amount with its percentage under it (on a phone the two do not fit on one line).
function setFigure(node, amount, percent) {
  if (!node) return;
  const amt = document.createElement("span");
  amt.className = "amt";
  amt.textContent = signed(amount);
  const sub = document.createElement("small");
  sub.className = "pct";
  sub.textContent = pct(percent).trim();
  node.replaceChildren(amt, " ", sub);
  node.classList.toggle("up", amount > 0);
  node.classList.toggle("down", amount < 0);
}

function flash(node, direction) {
  if (!node || !direction) return;
  node.classList.remove("flash-up", "flash-down");
  void node.offsetWidth; // restart the animation when two changes come close together
  node.classList.add(direction > 0 ? "flash-up" : "flash-down");
}

// --- connection indicator ---------------------------------------------------------------

const indicator = document.getElementById("connection-status");
const STATUS_TEXT = {
  [Status.CONNECTING]: "Connecting…",
  [Status.CONNECTED]: "Live",
  [Status.RECONNECTING]: "Reconnecting…",
  [Status.SIGNED_OUT]: "Signed out",
  [Status.DISCONNECTED]: "Offline",
};

function showStatus(status) {
  indicator.dataset.status = status;
  document.body.dataset.conn = status; // the CSS greys out figures that are no longer live
  const text = indicator.querySelector(".conn-text");
  if (status === Status.SIGNED_OUT) {
    text.innerHTML = 'Signed out · <a href="/accounts/login/?next=/">log in</a>';
  } else {
    text.textContent = STATUS_TEXT[status] || status;
  }
}

// --- toast / messages -------------------------------------------------------------------

const toast = document.getElementById("toast");
let toastTimer = null;
function showToast(text) {
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toast.hidden = true), 5000);
}

const wlMessage = document.getElementById("watchlist-message");
function watchlistMessage(text, isError = true) {
  wlMessage.textContent = text || "";
  wlMessage.hidden = !text;
  wlMessage.classList.toggle("error", Boolean(text) && isError);
}

// --- prices -----------------------------------------------------------------------------

function rowsFor(symbol) {
  return document.querySelectorAll(`[data-symbol="${CSS.escape(symbol)}"]`);
}

function pushSpark(symbol, value) {
  const series = sparks.get(symbol) || [];
  if (series[series.length - 1] !== value) series.push(value);
  while (series.length > SPARK_POINTS) series.shift();
  sparks.set(symbol, series);
  return series;
}

const lastUpdate = document.getElementById("last-update");
function stampUpdate() {
  lastUpdate.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function applyAsset(data) {
  stampUpdate();
  const symbol = data.symbol;
  const previous = lastPrice.get(symbol);
  const direction = previous == null ? 0 : Math.sign(data.price - previous);
  lastPrice.set(symbol, data.price);
  const series = pushSpark(symbol, data.price);
  for (const row of rowsFor(symbol)) {
    const priceCell = row.querySelector(".price");
    priceCell.textContent = fmtPrice(data.price);
    flash(priceCell, direction);
    drawSparkline(row.querySelector(".spark"), series);
    const change = row.querySelector(".change");
    if (change) setSigned(change, data.change_percent, data.change_percent == null ? "" : `${signed(data.change_percent)} %`);
    if (row.tagName === "TR") positionPriced(row, data);
    if (row.tagName === "LI") {
      row.dataset.status = "tracked";
      row.querySelector(".note")?.remove();
    }
  }
}

// --- portfolios -------------------------------------------------------------------------

// A position's row shows its price in the asset's currency (tagged with it) and its value,
// today's change and return in the portfolio's base currency: quantity x price x fx, where fx
// is the rate into the base the server valued it at (docs/protocol.md, "Valuation").
// Every row is drawn here, from what the server last said of the position (the first paint's
// REST positions, events, a REST refresh) and the latest price of its asset.
const positions = new Map(); // "<portfolio id>:<symbol>" -> what we know of the position
const keyOf = (card, symbol) => `${card.dataset.portfolioId}:${symbol}`;
const cardOf = (id) => document.querySelector(`.portfolio[data-portfolio-id="${id}"]`);

function positionRow(card, symbol) {
  const body = card.querySelector(".positions tbody");
  let row = body.querySelector(`tr[data-symbol="${CSS.escape(symbol)}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.symbol = symbol;
    row.innerHTML =
      '<th scope="row"><span class="sym"></span><small class="ccy"></small></th><td class="spark hide-sm"></td>' +
      '<td class="qty hide-xs"></td><td class="price">…</td><td class="value">…</td><td class="day">…</td>' +
      '<td class="return hide-sm">…</td>';
    row.querySelector(".sym").textContent = symbol;
    body.append(row);
    drawSparkline(row.querySelector(".spark"), sparks.get(symbol));
    client.subscribeToAsset(symbol);
  }
  return row;
}

function drawPosition(card, row, state) {
  row.dataset.quantity = String(state.quantity);
  row.querySelector(".qty").textContent = String(state.quantity);
  if (state.name) row.querySelector("th").title = state.name;
  const base = card.dataset.currency;
  const tag = row.querySelector(".ccy");
  if (state.currency) {
    row.dataset.currency = state.currency;
    tag.textContent = state.currency;
    tag.classList.toggle("same", state.currency === base); // hidden on a phone
    tag.title = state.fx == null ? "no rate yet" : `1 ${state.currency} = ${state.fx} ${base}`;
    row.querySelector(".price").title = `in ${state.currency}`;
  }
  if (state.price != null) row.querySelector(".price").textContent = fmtPrice(state.price);
  if (state.value != null) row.querySelector(".value").textContent = fmtMoney(state.value);
  if (state.day != null) setSigned(row.querySelector(".day"), state.day, signed(state.day));
  const ret = state.value == null || state.cost == null ? null : state.value - state.cost + state.realized + state.dividends;
  if (ret != null) setSigned(row.querySelector(".return"), ret, signed(ret));
}

// A position as REST (and the first paint) describe it: everything about it.
function positionKnown(card, pos) {
  const state = {
    name: pos.name || positions.get(keyOf(card, pos.symbol))?.name,
    currency: pos.currency,
    fx: pos.fx_rate,
    quantity: pos.quantity,
    price: pos.current_price,
    value: pos.current_value,
    day: pos.daily_change,
    cost: pos.cost_basis,
    realized: pos.realized_gain ?? 0,
    dividends: pos.dividends ?? 0,
  };
  positions.set(keyOf(card, pos.symbol), state);
  drawPosition(card, positionRow(card, pos.symbol), state);
}

// A pushed position (portfolio_update's positions_updated, position_update): its figures
// are in the base currency already. positions_updated carries no rate, cost or currency: the
// rate follows from value / (quantity x price); a position new to the page, or whose
// quantity moved (its cost did too), is read again over REST.
function applyPosition(card, pos, { quiet = false } = {}) {
  const key = keyOf(card, pos.symbol);
  const state = positions.get(key) || { realized: 0, dividends: 0 };
  const row = positionRow(card, pos.symbol);
  const moved = !positions.has(key) || Number(state.quantity) !== Number(pos.quantity);
  if (moved) portfolioRefreshSoon(card.dataset.portfolioId);
  positions.set(key, state);
  state.quantity = pos.quantity;
  if (pos.currency) state.currency = pos.currency;
  if (pos.cost_basis != null) state.cost = pos.cost_basis;
  if (pos.current_price != null) {
    const before = lastPrice.get(pos.symbol);
    if (!quiet && before != null && before !== pos.current_price) {
      flash(row.querySelector(".price"), Math.sign(pos.current_price - before));
    }
    lastPrice.set(pos.symbol, pos.current_price);
    state.price = pos.current_price;
  }
  if (pos.fx_rate !== undefined) {
    state.fx = pos.fx_rate;
  } else if (pos.current_value != null && Number(pos.quantity) && Number(pos.current_price)) {
    state.fx = pos.current_value / (pos.quantity * pos.current_price);
  }
  if (pos.current_value != null) {
    const old = row.querySelector(".value").textContent;
    state.value = pos.current_value;
    if (!quiet && old !== fmtMoney(state.value)) flash(row.querySelector(".value"), 1);
  }
  if (pos.daily_change != null) state.day = pos.daily_change;
  drawPosition(card, row, state);
}

// A live price for a position's asset: its value in the base currency at the last known rate.
function positionPriced(row, quote) {
  const card = row.closest(".portfolio");
  const state = card && positions.get(keyOf(card, row.dataset.symbol));
  if (!state) return;
  state.price = quote.price;
  if (state.fx != null) {
    const qty = Number(state.quantity);
    state.value = qty * quote.price * state.fx;
    if (quote.previous_close != null) state.day = qty * (quote.price - quote.previous_close) * state.fx;
  }
  drawPosition(card, row, state);
}

// The portfolio as the REST API values it now: its figures, every position (rows for new
// ones, none for deleted ones).
function portfolioShow(p) {
  const card = cardOf(p.id);
  if (!card) return;
  applyPortfolio({ ...p, portfolio_id: p.id, positions_updated: [] }, { fromSnapshot: true });
  const held = new Set(p.positions.map((pos) => pos.symbol));
  for (const row of card.querySelectorAll(".positions tbody tr[data-symbol]")) {
    if (!held.has(row.dataset.symbol)) {
      positions.delete(keyOf(card, row.dataset.symbol));
      row.remove();
    }
  }
  for (const pos of p.positions) positionKnown(card, pos);
}

async function portfolioRefresh(id) {
  const result = await api("GET", `/api/portfolios/${id}/`);
  if (result.ok) portfolioShow(result.data);
}

const refreshTimers = new Map();
function portfolioRefreshSoon(id) {
  if (refreshTimers.has(id)) return;
  refreshTimers.set(
    id,
    setTimeout(() => {
      refreshTimers.delete(id);
      portfolioRefresh(id);
    }, 300),
  );
}

function applyPortfolio(data, { fromSnapshot = false } = {}) {
  const card = document.querySelector(`.portfolio[data-portfolio-id="${data.portfolio_id}"]`);
  if (!card) return;
  const total = card.querySelector(".total-value");
  const before = total.dataset.value == null ? null : Number(total.dataset.value);
  total.dataset.value = String(data.total_value);
  total.textContent = fmtMoney(data.total_value);
  if (!fromSnapshot && before != null && before !== data.total_value) flash(total, Math.sign(data.total_value - before));
  setFigure(card.querySelector(".daily-change"), data.daily_change, data.daily_change_percent);
  setFigure(card.querySelector(".total-return"), data.total_return, data.total_return_percent);
  card.querySelector(".valued-at").textContent = data.valued_at
    ? `valued ${new Date(data.valued_at).toLocaleTimeString()}`
    : "not valued yet";
  for (const pos of data.positions_updated || []) applyPosition(card, pos, { quiet: fromSnapshot });
  if (!fromSnapshot && data.valued_at) {
    const points = charts.get(data.portfolio_id) || [];
    if (!points.length || points[points.length - 1].t !== data.valued_at) points.push({ t: data.valued_at, v: data.total_value });
    while (points.length > CHART_POINTS) points.shift();
    charts.set(data.portfolio_id, points);
    drawChart(card);
  }
}

const chartDays = new Map(); // portfolio id -> days shown
async function loadRange(card, days) {
  const id = Number(card.dataset.portfolioId);
  for (const b of card.querySelectorAll(".range-btn")) b.setAttribute("aria-pressed", String(b.dataset.days === String(days)));
  try {
    const result = await api("GET", `/dashboard/portfolios/${id}/values/?days=${days}`);
    if (!result.ok) throw new Error(`HTTP ${result.status}`);
    chartDays.set(id, days);
    charts.set(id, result.data);
    drawChart(card);
  } catch (error) {
    showToast(`Could not load the chart: ${error.message}`);
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest(".range-btn");
  if (button) loadRange(button.closest(".portfolio"), Number(button.dataset.days));
});

function drawChart(card) {
  const id = Number(card.dataset.portfolioId);
  drawValueChart(card.querySelector(".value-chart"), charts.get(id), card.querySelector(".chart-caption"), fmtMoney);
}

// --- watchlist --------------------------------------------------------------------------

const wlList = document.getElementById("watchlist");
const wlEmpty = document.querySelector(".watchlist-empty");

function heldInPortfolio(symbol) {
  return Boolean(document.querySelector(`.positions tr[data-symbol="${CSS.escape(symbol)}"]`));
}

function watchlistItem(row) {
  let li = wlList.querySelector(`li[data-symbol="${CSS.escape(row.symbol)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.symbol = row.symbol;
    li.innerHTML =
      '<span class="sym"></span><span class="spark"></span><span class="price">…</span>' +
      '<span class="change"></span><button class="remove" type="button">×</button>';
    li.querySelector(".sym").textContent = row.symbol;
    li.querySelector(".remove").setAttribute("aria-label", `Remove ${row.symbol}`);
    wlList.append(li);
  }
  li.dataset.status = row.tracking_status || "pending";
  li.querySelector(".sym").title = row.name || "";
  wlEmpty.hidden = true;
  return li;
}

function markUnknown(symbol, message) {
  for (const li of wlList.querySelectorAll(`li[data-symbol="${CSS.escape(symbol)}"]`)) {
    li.dataset.status = "unknown";
    if (!li.querySelector(".note")) {
      const note = document.createElement("span");
      note.className = "note";
      li.append(note);
    }
    li.querySelector(".note").textContent = message;
  }
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken, Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  return { ok: response.ok, status: response.status, data };
}

const SERVER_MESSAGES = {
  invalid_symbol: (s) => `“${s}” is not a valid symbol: use 1-20 characters of A-Z, 0-9 and . - ^ = /`,
  unknown_symbol: (s) => `${s} is not known to any market data source.`,
};

async function addToWatchlist(raw) {
  const typed = String(raw).trim();
  const symbol = normalizeSymbol(typed);
  if (!symbol) {
    watchlistMessage(
      typed
        ? SERVER_MESSAGES.invalid_symbol(typed)
        : "Type a symbol first, e.g. AAPL, BRK-B, ^GSPC or BTC-USD.",
    );
    return false;
  }
  if (watchlist.has(symbol)) {
    watchlistMessage(`${symbol} is already on your watchlist.`, false);
    return false;
  }
  let result;
  try {
    result = await api("POST", "/dashboard/watchlist/", { symbol });
  } catch {
    watchlistMessage(`Could not reach the server to add ${symbol}; try again.`);
    return false;
  }
  if (!result.ok) {
    const code = result.data?.code;
    const explain = SERVER_MESSAGES[code];
    watchlistMessage(explain ? explain(symbol) : result.data?.message || `Could not add ${symbol} (HTTP ${result.status}).`);
    return false;
  }
  watchlistMessage("");
  const row = result.data;
  watchlist.add(row.symbol);
  const li = watchlistItem(row);
  if (row.history?.length) sparks.set(row.symbol, row.history.slice(-SPARK_POINTS));
  drawSparkline(li.querySelector(".spark"), sparks.get(row.symbol));
  if (row.quote) applyAsset(row.quote);
  else li.querySelector(".price").textContent = "…";
  client.subscribeToAsset(row.symbol);
  return true;
}

async function removeFromWatchlist(symbol) {
  let result;
  try {
    result = await api("DELETE", `/dashboard/watchlist/${encodeURIComponent(symbol)}/`);
  } catch {
    watchlistMessage(`Could not reach the server to remove ${symbol}; try again.`);
    return;
  }
  if (!result.ok && result.status !== 404) {
    watchlistMessage(result.data?.message || `Could not remove ${symbol} (HTTP ${result.status}).`);
    return;
  }
  watchlistMessage("");
  watchlist.delete(symbol);
  wlList.querySelector(`li[data-symbol="${CSS.escape(symbol)}"]`)?.remove();
  wlEmpty.hidden = watchlist.size > 0;
  if (!heldInPortfolio(symbol)) client.unsubscribeFromAsset(symbol);
}

document.getElementById("watchlist-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.currentTarget.elements.symbol;
  if (await addToWatchlist(input.value)) input.value = "";
});

wlList.addEventListener("click", (event) => {
  const button = event.target.closest("button.remove");
  if (button) removeFromWatchlist(button.closest("li").dataset.symbol);
});

// --- wiring -----------------------------------------------------------------------------

const client = new TickerflowClient({
  onStatusChange: showStatus,
  onError: (error) => {
    if (error?.type !== "server") return;
    if (error.code === "unknown_symbol" || error.code === "invalid_symbol") {
      const symbol = error.symbol;
      const text = error.message || "unknown symbol";
      if (symbol && watchlist.has(symbol)) {
        markUnknown(symbol, text);
        watchlistMessage(SERVER_MESSAGES[error.code](symbol));
      } else {
        watchlistMessage(text);
      }
    } else if (error.code === "subscription_limit") {
      showToast(error.message || "Too many live subscriptions on this page.");
    } else {
      console.warn("tickerflow server error", error);
    }
  },
});

client.onMessageType("asset_update", applyAsset);
client.onMessageType("portfolio_update", (data) => {
  stampUpdate();
  applyPortfolio(data);
});
client.onMessageType("position_update", (data) => {
  stampUpdate();
  const card = document.querySelector(`.portfolio[data-portfolio-id="${data.portfolio_id}"]`);
  if (card) applyPosition(card, data);
  if (data.significant_change) showToast(`${data.symbol} moved: ${fmtPrice(data.current_price)}`);
});
// Price alerts have their own toast and unread list (alerts.js); other notifications a toast.
client.onMessageType("notification", (data) => {
  if (data.kind !== "price_alert") showToast(data.message);
});
const alerts = initAlerts({ client, api, showToast });
const performance = initPerformance({ client, api });

// What the server confirmed on this connection (tests wait on it before publishing).
const subscribed = new Set();
client.onMessageType("connection", () => subscribed.clear());
client.onMessageType("subscribed", (data) =>
  subscribed.add(data.channel === "asset" ? `asset:${data.symbol}` : `portfolio:${data.portfolio_id}`),
);
client.onMessageType("unsubscribed", (data) =>
  subscribed.delete(data.channel === "asset" ? `asset:${data.symbol}` : `portfolio:${data.portfolio_id}`),
);

// First paint from the server's data, then live.
for (const { summary, positions: held } of initial.portfolios) {
  applyPortfolio({ ...summary, positions_updated: [] }, { fromSnapshot: true });
  const card = cardOf(summary.portfolio_id);
  if (card) for (const pos of held) positionKnown(card, pos);
}
for (const card of document.querySelectorAll(".portfolio")) drawChart(card);
for (const item of initial.watchlist) {
  if (item.quote) applyAsset(item.quote);
  if (item.tracking_status === "unknown") markUnknown(item.symbol, SERVER_MESSAGES.unknown_symbol(item.symbol));
}
for (const [symbol, series] of sparks) for (const row of rowsFor(symbol)) drawSparkline(row.querySelector(".spark"), series);

for (const card of document.querySelectorAll(".portfolio")) client.subscribeToPortfolio(card.dataset.portfolioId);
const symbols = new Set([...document.querySelectorAll("[data-symbol]")].map((n) => n.dataset.symbol));
for (const symbol of symbols) client.subscribeToAsset(symbol);
client.connect();
// Back online: try at once instead of waiting out the backoff.
window.addEventListener("online", () => client.reconnectNow());

// Tests and curious users can look at the live client.
window.tickerflow = { client, subscribed, alerts, performance, portfolioRefresh };
