// The performance panel inside each portfolio card (templates/dashboard/_performance.html):
// a range's time- and money-weighted returns, gains, dividends and fees in the portfolio's
// currency, and its value chart with a benchmark line rebased to the range's start value,
// from GET /api/portfolios/<id>/performance/ (docs/dashboard.md).
//
// Live: a portfolio_update moves the end value and the chart's last point at once; the range
// itself is fetched again at most once every REFRESH_MS whatever the number of updates (the
// server derives it from daily values: one call per price tick would be wasted work).
import { drawValueChart } from "./charts.js";

export const REFRESH_MS = 5000;
const COALESCE_MS = 250; // updates of one revaluation round arrive together: one fetch for them
const AUTO_BENCHMARK = "^GSPC";

const percent = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const signedPercent = (v) => (v == null ? "n/a" : `${v > 0 ? "+" : v < 0 ? "−" : ""}${percent.format(Math.abs(v))} %`);
const todayUtc = () => new Date().toISOString().slice(0, 10);

function currencyFormat(code) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: code });
  } catch {
    // Not an ISO 4217 code Intl knows: the number and the code.
    const plain = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return { format: (v) => `${plain.format(v)} ${code}` };
  }
}

// What a refused request says, in words: {"error", "message"}, {"detail"} or {"field": [...]}.
function problem(data, status) {
  if (!data || typeof data !== "object") return `the server answered HTTP ${status}`;
  if (data.message || data.detail) return data.message || data.detail;
  return Object.entries(data)
    .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
    .join("; ");
}

// The benchmark's closes scaled so that on the portfolio's first valued day they are worth what
// the portfolio was: its start value, or, for a range that starts before the first buy, its
// first value above 0. The two lines then share one axis and start together.
export function rebased(benchmark, result) {
  const closes = (benchmark?.series || []).filter((p) => Number.isFinite(p.value) && p.value > 0);
  const anchor =
    result.start_value > 0 ? { date: result.start, value: result.start_value } : result.series.find((p) => p.value > 0);
  if (!closes.length || !anchor) return [];
  const base = closes.findLast((p) => p.date <= anchor.date) || closes[0];
  return closes.map((p) => ({ t: p.date, v: (p.value / base.value) * anchor.value }));
}

class Panel {
  constructor(node, api) {
    this.node = node;
    this.api = api;
    this.id = Number(node.dataset.portfolioId);
    this.money = currencyFormat(node.dataset.currency || "USD");
    this.range = node.querySelector('.perf-range-btn[aria-pressed="true"]')?.dataset.range || "max";
    this.picker = node.querySelector(".perf-benchmark");
    this.benchmarkChosen = false; // until the user picks one, an untracked ^GSPC falls back to none
    this.result = null;
    this.request = 0; // the latest request's number: an older answer arriving late is dropped
    this.lastFetchAt = 0;
    this.timer = null;
    this.live = null; // {value, at}: the latest pushed total value
    this.stale = true;
    this.messageKind = null;
  }

  field(name) {
    return this.node.querySelector(`.perf-${name}`);
  }

  // kind: "note" (said in passing), "benchmark" (a refused pick) or "load" (the last fetch
  // failed: cleared by the next one that succeeds).
  say(text, kind = "note") {
    const message = this.field("message");
    message.textContent = text || "";
    message.hidden = !text;
    message.classList.toggle("error", Boolean(text) && kind !== "note");
    this.messageKind = text ? kind : null;
  }

  setMoney(name, value, signed = false) {
    const node = this.field(name);
    if (value == null) {
      node.textContent = "…";
      return;
    }
    const text = this.money.format(Math.abs(value));
    node.textContent = signed ? `${value > 0 ? "+" : value < 0 ? "−" : ""}${text}` : this.money.format(value);
    node.classList.toggle("up", signed && value > 0);
    node.classList.toggle("down", signed && value < 0);
  }

  setPercent(name, value) {
    const node = this.field(name);
    node.textContent = signedPercent(value);
    node.classList.toggle("up", value != null && value > 0);
    node.classList.toggle("down", value != null && value < 0);
  }

  async load({ range = this.range } = {}) {
    if (!this.node.open) {
      this.stale = true; // fetched when opened
      return;
    }
    this.stale = false;
    clearTimeout(this.timer);
    this.timer = null;
    const request = ++this.request;
    const startedAt = Date.now();
    this.lastFetchAt = startedAt;
    this.node.dataset.loading = "true";
    const benchmark = this.picker.value;
    const query = new URLSearchParams({ range });
    if (benchmark) query.set("benchmark", benchmark);
    let answer;
    try {
      answer = await this.api("GET", `/api/portfolios/${this.id}/performance/?${query}`);
    } catch {
      answer = null;
    }
    if (request !== this.request) return; // a newer request (another range, a benchmark) won
    delete this.node.dataset.loading;
    if (answer === null) {
      this.say("Could not reach the server for the performance figures; they update on the next change.", "load");
      return;
    }
    if (!answer.ok && answer.status === 400 && benchmark) {
      // The benchmark is refused (not tracked, unknown): show the portfolio alone, and say why.
      const automatic = !this.benchmarkChosen && benchmark === AUTO_BENCHMARK;
      this.picker.value = "";
      if (automatic) this.say(`No benchmark: ${benchmark} is not tracked.`, "note");
      else this.say(`Benchmark ${benchmark} refused: ${problem(answer.data, answer.status)}`, "benchmark");
      return this.load({ range });
    }
    if (!answer.ok) {
      this.say(`Could not load the performance figures: ${problem(answer.data, answer.status)}`, "load");
      return;
    }
    if (this.messageKind === "load") this.say("");
    this.range = range;
    this.result = { ...answer.data, series: answer.data.series || [] };
    // A value pushed while this request was under way is newer than its answer.
    if (this.live && this.live.at > startedAt) this.followLive(this.live.value);
    this.render();
  }

  render() {
    const r = this.result;
    this.node.dataset.range = r.range;
    this.node.dataset.loaded = "true";
    for (const button of this.node.querySelectorAll(".perf-range-btn")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === r.range));
    }
    this.setPercent("twr", r.twr_percent);
    this.setPercent("irr", r.irr_percent);
    this.setMoney("realized", r.realized_gain, true);
    this.setMoney("unrealized", r.unrealized_gain, true);
    this.setMoney("dividends", r.dividends);
    this.setMoney("fees", r.fees);
    this.setMoney("flows", r.net_flows, true);
    this.setMoney("end", r.end_value);
    const bench = r.benchmark;
    const benchNode = this.field("bench");
    if (bench) {
      benchNode.textContent = `${bench.symbol} ${signedPercent(bench.return_percent)}`;
      benchNode.classList.toggle("up", bench.return_percent > 0);
      benchNode.classList.toggle("down", bench.return_percent < 0);
    } else {
      benchNode.textContent = "—";
      benchNode.classList.remove("up", "down");
    }
    const overlay = bench ? rebased(bench, r) : [];
    const drawn = r.series.length >= 2;
    this.node.querySelector(".perf-legend-bench").hidden = !(drawn && overlay.length >= 2);
    this.node.querySelector(".perf-bench-name").textContent = bench ? bench.symbol : "";
    this.node.querySelector(".perf-span").textContent = r.start && r.end ? `· ${r.start} – ${r.end}` : "";
    drawValueChart(
      this.node.querySelector(".perf-chart"),
      r.series.map((p) => ({ t: p.date, v: p.value })),
      null,
      (v) => this.money.format(v),
      { overlay, emptyText: "Not enough daily values in this range yet." },
    );
  }

  // The range ends today: its last point is today's value, which the live valuation moves.
  followLive(value) {
    const r = this.result;
    r.end_value = value;
    const today = todayUtc();
    const last = r.series[r.series.length - 1];
    if (last && last.date === today) last.value = value;
    else r.series.push({ date: today, value, net_flows: 0 });
  }

  pushed(data) {
    if (data.total_value == null) return;
    const moved = data.value_changed || this.result?.end_value !== data.total_value;
    this.live = { value: data.total_value, at: Date.now() };
    if (!moved) return; // a snapshot of what is shown already (e.g. the one on subscribe)
    if (this.result) {
      this.followLive(data.total_value);
      this.render();
    } else if (this.node.dataset.loading) {
      return; // the first answer is on its way, and takes this value when it comes
    }
    this.refreshSoon();
  }

  // At most one fetch per REFRESH_MS: the first change after a quiet spell is fetched almost
  // at once, a burst's later ones wait for the window and share one fetch.
  refreshSoon() {
    if (this.timer) return;
    const wait = Math.max(COALESCE_MS, this.lastFetchAt + REFRESH_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load();
    }, wait);
  }

  wire() {
    this.node.addEventListener("click", (event) => {
      const button = event.target.closest(".perf-range-btn");
      if (button) this.load({ range: button.dataset.range });
    });
    this.picker.addEventListener("change", () => {
      this.benchmarkChosen = true;
      this.say("");
      this.load();
    });
    this.node.addEventListener("toggle", () => {
      if (this.node.open && this.stale) this.load();
    });
  }
}

/** Starts every performance panel on the page; `api` is dashboard.js's fetch helper. */
export function initPerformance({ client, api }) {
  const panels = new Map();
  for (const node of document.querySelectorAll("details.performance")) {
    const panel = new Panel(node, api);
    panel.wire();
    panels.set(panel.id, panel);
    panel.load();
  }
  client.onMessageType("portfolio_update", (data) => panels.get(Number(data.portfolio_id))?.pushed(data));
  return { panels };
}
