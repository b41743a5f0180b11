// The ledger on the dashboard (templates/dashboard/_ledger.html inside each portfolio card):
// the latest transactions, an add form and a CSV import that lists its errors by line, over
// the REST API (docs/protocol.md, "Transactions", "Import"). After each change the card is
// redrawn from REST by dashboard.js (window.tickerflow.portfolioRefresh), which draws the
// positions.
//
// Loaded before dashboard.js (document order) and started on DOMContentLoaded, once
// dashboard.js has run and window.tickerflow exists.

const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const RECENT = 50;
const plain = new Intl.NumberFormat(undefined, { maximumFractionDigits: 10 });

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

// The card's figures and positions as the server values them after a change.
const refreshPortfolio = (id) => window.tickerflow.portfolioRefresh(id);

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

function start() {
  for (const panel of document.querySelectorAll("details.ledger")) wire(panel);
  window.tickerflow.ledger = { loadLedger, ready: true };
}

document.addEventListener("DOMContentLoaded", start);
