// The ledger on the dashboard (templates/dashboard/_ledger.html inside each portfolio card):
// the latest transactions, an add form and a CSV import that lists its errors by line, over
// the REST API (docs/protocol.md, "Transactions", "Import"). It also gives each position its
// currency and keeps its value in the portfolio's base currency (price x quantity x fx).
//
// Loaded before dashboard.js (document order) and started on DOMContentLoaded, once
// dashboard.js has run: its live client is window.tickerflow.client, and our handlers run
// after its own, so they correct what it drew for a position in another currency.

const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const RECENT = 50;
const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const plain = new Intl.NumberFormat(undefined, { maximumFractionDigits: 10 });
const signed = (v) => `${v > 0 ? "+" : v < 0 ? "−" : ""}${money.format(Math.abs(v))}`;
const held = new Map(); // "<portfolio id>:<symbol>" -> what the REST portfolio said of the position

async function call(method, url, body) {
  const headers = { "X-CSRFToken": csrfToken, Accept: "application/json" };
  const form = body instanceof FormData;
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers,
    body: body === undefined ? undefined : form ? body : JSON.stringify(body),
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

function setSigned(node, value) {
  if (!node || value == null || Number.isNaN(value)) return;
  node.textContent = signed(value);
  node.classList.toggle("up", value > 0);
  node.classList.toggle("down", value < 0);
}

// --- positions: currency and base-currency values -------------------------------------------

const cardOf = (id) => document.querySelector(`.portfolio[data-portfolio-id="${id}"]`);
const rowOf = (card, symbol) => card.querySelector(`.positions tr[data-symbol="${CSS.escape(symbol)}"]`);

function labelHeads(card) {
  const base = card.dataset.currency;
  for (const th of card.querySelectorAll(".positions thead th")) {
    if (["Value", "Today", "Return"].includes(th.dataset.label || th.textContent)) {
      th.dataset.label = th.dataset.label || th.textContent;
      const unit = document.createElement("span");
      unit.className = "base-ccy";
      unit.textContent = ` (${base})`;
      th.replaceChildren(th.dataset.label, unit);
    }
  }
}

function tagRow(card, row, state) {
  row.dataset.currency = state.currency;
  const th = row.querySelector("th");
  let tag = th.querySelector(".ccy");
  if (!tag) {
    tag = document.createElement("small");
    tag.className = "ccy";
    th.firstChild ? th.firstChild.after(tag) : th.append(tag);
  }
  tag.textContent = state.currency;
  tag.classList.toggle("same", state.currency === card.dataset.currency); // hidden on a phone
  tag.title = state.fx == null ? "no rate yet" : `1 ${state.currency} = ${plain.format(state.fx)} ${card.dataset.currency}`;
  row.querySelector(".price").title = `in ${state.currency}`;
}

// Value, today and return of one position from what we know of it, in the base currency.
function redraw(row, state) {
  if (state.price == null || state.fx == null) return;
  const value = state.quantity * state.price * state.fx;
  if (state.fx !== 1) {
    row.querySelector(".value").textContent = money.format(value);
    if (state.previousClose != null) setSigned(row.querySelector(".day"), state.quantity * (state.price - state.previousClose) * state.fx);
  }
  setSigned(row.querySelector(".return"), value - state.cost + state.realized + state.dividends);
}

function remember(card, position) {
  const key = `${card.dataset.portfolioId}:${position.symbol}`;
  const state = {
    ...(held.get(key) || {}),
    currency: position.currency,
    fx: position.fx_rate,
    quantity: position.quantity,
    price: position.current_price,
    cost: position.cost_basis,
    realized: position.realized_gain,
    dividends: position.dividends,
  };
  held.set(key, state);
  return state;
}

// The portfolio as the REST API values it now, drawn through the live client's own
// portfolio_update handlers (dashboard.js adds rows for new positions), then tagged.
async function refreshPortfolio(id) {
  const card = cardOf(id);
  const result = await call("GET", `/api/portfolios/${id}/`);
  if (!card || !result.ok) return;
  const p = result.data;
  const { client } = window.tickerflow;
  const update = {
    portfolio_id: p.id, name: p.name, currency: p.currency, total_value: p.total_value, total_cost: p.total_cost,
    daily_change: p.daily_change, daily_change_percent: p.daily_change_percent, total_return: p.total_return,
    total_return_percent: p.total_return_percent, value_changed: true, valued_at: p.valued_at,
    positions_updated: p.positions.map((pos) => ({
      symbol: pos.symbol, quantity: pos.quantity, current_price: pos.current_price,
      current_value: pos.current_value, daily_change: pos.daily_change,
    })),
  };
  for (const handler of [...(client.handlers.get("portfolio_update") || [])]) handler(update, { type: "portfolio_update", data: update });
  const symbols = new Set(p.positions.map((pos) => pos.symbol));
  for (const row of card.querySelectorAll(".positions tbody tr[data-symbol]")) if (!symbols.has(row.dataset.symbol)) row.remove();
  decorate(card, p.positions);
}

function decorate(card, positions) {
  labelHeads(card);
  for (const position of positions) {
    const row = rowOf(card, position.symbol);
    if (!row) continue;
    const state = remember(card, position);
    tagRow(card, row, state);
    // dashboard.js draws a quantity x price: right in the base currency only when fx is 1.
    if (state.fx != null && state.fx !== 1 && position.current_value != null) {
      row.querySelector(".value").textContent = money.format(position.current_value);
      setSigned(row.querySelector(".day"), position.daily_change);
    }
    setSigned(row.querySelector(".return"), position.total_return);
  }
}

function onAsset(data) {
  for (const card of document.querySelectorAll(".portfolio")) {
    const state = held.get(`${card.dataset.portfolioId}:${data.symbol}`);
    const row = state && rowOf(card, data.symbol);
    if (!row) continue;
    state.price = data.price;
    state.previousClose = data.previous_close;
    redraw(row, state);
  }
}

function onPortfolio(data) {
  const card = cardOf(data.portfolio_id);
  if (!card) return;
  for (const pos of data.positions_updated || []) {
    const state = held.get(`${data.portfolio_id}:${pos.symbol}`);
    const row = state && rowOf(card, pos.symbol);
    if (!row) continue;
    state.quantity = pos.quantity;
    if (pos.current_price != null) state.price = pos.current_price;
    if (pos.current_value != null && pos.quantity && pos.current_price) state.fx = pos.current_value / (pos.quantity * pos.current_price);
    if (pos.current_value != null) setSigned(row.querySelector(".return"), pos.current_value - state.cost + state.realized + state.dividends);
  }
}

// --- the ledger panel -----------------------------------------------------------------------

const dateOf = (iso) => new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
const number = (v) => (v == null ? "" : plain.format(v));

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function loadLedger(panel) {
  const id = panel.dataset.portfolioId;
  const result = await call("GET", `/dashboard/portfolios/${id}/transactions/?limit=${RECENT}`);
  if (!result.ok) return;
  const { count, transactions } = result.data;
  const body = panel.querySelector(".transactions tbody");
  body.replaceChildren(
    ...transactions.map((tx) => {
      const tr = document.createElement("tr");
      tr.dataset.transactionId = tx.id;
      tr.dataset.type = tx.type;
      const date = dateOf(tx.executed_at);
      const sum = tx.type === "buy" || tx.type === "sell" ? tx.fee : tx.amount;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "tx-delete";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Delete ${tx.type} ${tx.symbol || ""} of ${date}`.replace("  ", " "));
      const last = document.createElement("td");
      last.append(remove);
      tr.append(
        cell(date, "left"), cell(tx.type, "left"), cell(tx.symbol || "—", "left"),
        cell(tx.type === "split" ? tx.ratio : number(tx.quantity)), cell(number(tx.price)), cell(number(sum)),
        cell(tx.currency, "left"), cell(number(tx.fx_rate)), last,
      );
      return tr;
    }),
  );
  panel.querySelector(".tx-count").textContent =
    count === 0 ? "No transactions yet." : count > transactions.length ? `The latest ${transactions.length} of ${plain.format(count)} transactions.` : `${plain.format(count)} transactions.`;
  panel.dataset.loaded = "true";
}

function say(node, text, isError) {
  node.textContent = text;
  node.hidden = !text;
  node.classList.toggle("error", Boolean(isError));
}

const CODES = { insufficient_quantity: "Not enough held: ", fx_unavailable: "No exchange rate yet: " };

// 400 answers: {"field": ["message"]}, or {"error": code, "message"}.
function problems(data, status) {
  if (!data || typeof data !== "object") return `The server answered HTTP ${status}.`;
  if (data.error) return `${CODES[data.error] || ""}${data.message || data.error}`;
  return Object.entries(data)
    .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
    .join("; ");
}

function showFieldsFor(form) {
  const type = form.elements.type.value;
  for (const label of form.querySelectorAll("label[data-for]")) label.hidden = !label.dataset.for.split(" ").includes(type);
}

async function addTransaction(panel, form) {
  const message = panel.querySelector(".tx-message");
  const body = { type: form.elements.type.value };
  for (const label of form.querySelectorAll("label[data-for]:not([hidden])")) {
    const input = label.querySelector("input");
    if (input.value.trim()) body[input.name] = input.value.trim();
  }
  if (form.elements.date.value) body.executed_at = `${form.elements.date.value}T00:00:00Z`;
  let result;
  try {
    result = await call("POST", `/api/portfolios/${panel.dataset.portfolioId}/transactions/`, body);
  } catch {
    say(message, "Could not reach the server; try again.", true);
    return;
  }
  if (!result.ok) {
    say(message, problems(result.data, result.status), true);
    return;
  }
  const tx = result.data;
  say(message, `${result.status === 200 ? "Already recorded" : "Recorded"}: ${tx.type} ${tx.symbol || ""}`.trim(), false);
  for (const input of form.querySelectorAll("input")) input.value = "";
  await Promise.all([loadLedger(panel), refreshPortfolio(panel.dataset.portfolioId)]);
}

async function importCsv(panel, form) {
  const box = panel.querySelector(".csv-result");
  const summary = box.querySelector(".csv-summary");
  const list = box.querySelector(".csv-errors");
  const file = form.elements.file.files[0];
  box.hidden = false;
  list.replaceChildren();
  if (!file) {
    say(summary, "Choose a CSV file first.", true);
    return;
  }
  const data = new FormData();
  data.append("file", file);
  data.append("format", form.elements.format.value);
  let result;
  try {
    result = await call("POST", `/api/portfolios/${panel.dataset.portfolioId}/transactions/import/`, data);
  } catch {
    say(summary, "Could not reach the server; try again.", true);
    return;
  }
  const errors = result.data?.errors || [];
  if (!result.ok) {
    say(summary, errors.length ? `Nothing was imported: ${errors.length} ${errors.length === 1 ? "error" : "errors"}.` : problems(result.data, result.status), true);
    list.replaceChildren(
      ...errors.map((e) => {
        const li = document.createElement("li");
        li.textContent = e.line ? `Line ${e.line}: ${e.message}` : e.message;
        return li;
      }),
    );
    return;
  }
  const { created, duplicates } = result.data;
  say(summary, `Imported ${created} ${created === 1 ? "transaction" : "transactions"}${duplicates ? `, ${duplicates} already recorded` : ""}.`, false);
  form.reset();
  await Promise.all([loadLedger(panel), refreshPortfolio(panel.dataset.portfolioId)]);
}

function wire(panel) {
  const form = panel.querySelector(".tx-form");
  showFieldsFor(form);
  form.elements.type.addEventListener("change", () => {
    showFieldsFor(form);
    say(panel.querySelector(".tx-message"), "", false);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    addTransaction(panel, form);
  });
  const csv = panel.querySelector(".csv-form");
  csv.addEventListener("submit", (event) => {
    event.preventDefault();
    importCsv(panel, csv);
  });
  panel.addEventListener("toggle", () => {
    if (panel.open && !panel.dataset.loaded) loadLedger(panel);
  });
  panel.querySelector(".transactions").addEventListener("click", async (event) => {
    const button = event.target.closest(".tx-delete");
    if (!button) return;
    const id = button.closest("tr").dataset.transactionId;
    const result = await call("DELETE", `/api/portfolios/${panel.dataset.portfolioId}/transactions/${id}/`);
    const message = panel.querySelector(".tx-message");
    if (!result.ok && result.status !== 404) {
      say(message, problems(result.data, result.status), true);
      return;
    }
    say(message, "Deleted.", false);
    await Promise.all([loadLedger(panel), refreshPortfolio(panel.dataset.portfolioId)]);
  });
}

async function start() {
  const { client } = window.tickerflow;
  client.onMessageType("asset_update", onAsset);
  client.onMessageType("portfolio_update", onPortfolio);
  for (const panel of document.querySelectorAll("details.ledger")) wire(panel);
  const result = await call("GET", "/api/portfolios/");
  if (result.ok) {
    for (const p of result.data) {
      const card = cardOf(p.id);
      if (card) decorate(card, p.positions);
    }
  }
  window.tickerflow.ledger = { refreshPortfolio, loadLedger, ready: true };
}

document.addEventListener("DOMContentLoaded", start);
