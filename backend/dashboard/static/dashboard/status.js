// Staff status page: polls /status/data/ and redraws. Parts the running build does not
// provide (connection registry, circuit state) say so instead of failing.
const REFRESH_MS = 5000;
const root = document.getElementById("status");

const text = (value) => (value == null || value === "" ? "—" : String(value));
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const secs = (s) => (s == null ? "running…" : `${Number(s).toFixed(2)} s`);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : text(child));
  return node;
}

function table(headers, rows) {
  if (!rows.length) return h("p", { class: "muted" }, "None.");
  const head = h("tr", {}, ...headers.map((x, i) => h("th", i === 0 ? { class: "left" } : {}, x)));
  const body = rows.map((cells) => h("tr", {}, ...cells.map((c, i) => h("td", i === 0 ? { class: "left" } : {}, c))));
  return h("table", {}, h("thead", {}, head), h("tbody", {}, ...body));
}

function kv(obj) {
  const dl = h("dl", { class: "kv" });
  for (const [key, value] of Object.entries(obj)) {
    const shown = Array.isArray(value) ? value.join(", ") || "none" : typeof value === "object" && value ? JSON.stringify(value) : value;
    dl.append(h("dt", {}, key.replaceAll("_", " ")), h("dd", {}, text(shown)));
  }
  return dl;
}

function badge(label, kind) {
  return h("span", { class: `badge ${kind}` }, label);
}

function render(data) {
  document.getElementById("tracked-assets").textContent = text(data.tracked_assets);
  document.getElementById("last-quote").textContent = when(data.last_quote_at);
  const last = data.runs[0];
  document.getElementById("last-cycle").textContent = last ? `${when(last.started_at)} (${last.kind})` : "no cycle yet";
  document.getElementById("last-duration").textContent = last ? secs(last.duration_seconds) : "—";

  const conn = document.getElementById("connections");
  conn.replaceChildren(
    data.connections ? kv(data.connections) : h("p", { class: "muted" }, "Connection registry not available on this build."),
  );

  const alerts = data.alerts;
  document.getElementById("alerts").replaceChildren(
    !alerts
      ? h("p", { class: "muted" }, "Alerts not available on this build.")
      : alerts.error
        ? h("p", { class: "down" }, `Alerts failed: ${alerts.error}`)
        : kv({
            active: alerts.active,
            disarmed: alerts.disarmed,
            inactive: alerts.inactive,
            users_with_active: alerts.users_with_active,
            firings_last_24h: alerts.firings_last_24h,
            firings_unread: alerts.firings_unread,
            firings_total: alerts.firings_total,
            check_p50_ms: alerts.check_latency?.p50_ms,
            check_p95_ms: alerts.check_latency?.p95_ms,
          }),
  );

  document.getElementById("stream").replaceChildren(...streamParts(data.stream));

  const health = data.source_health;
  const sources = data.sources.map((s) => {
    const live = health && (health[s.name] || health.items?.find?.((i) => i.name === s.name));
    const state = live?.circuit || live?.state || null;
    const kind = !state ? "" : /closed|ok|healthy/i.test(state) ? "ok" : /half/i.test(state) ? "warn" : "bad";
    const rate = live && live.requests_per_minute != null ? `${live.requests_last_minute}/${live.requests_per_minute} a min` : "—";
    return [
      `${s.priority ?? "–"}. ${s.name}`,
      s.latest_quotes,
      when(s.last_fetched),
      state ? badge(state, kind) : h("span", { class: "muted" }, "n/a"),
      live?.healthy == null ? "—" : live.healthy ? badge("healthy", "ok") : badge("failing", "bad"),
      live?.consecutive_failures ?? "—",
      rate,
      live?.last_error || "—",
    ];
  });
  const srcBox = document.getElementById("sources");
  srcBox.replaceChildren(
    table(["Source", "Quotes", "Last fetch", "Circuit", "Health", "Failures", "Requests", "Last error"], sources),
  );
  if (!health) srcBox.append(h("p", { class: "muted" }, "Circuit state not exposed by this build."));
  else if (health.error) srcBox.append(h("p", { class: "down" }, `Source health failed: ${health.error}`));

  document.getElementById("runs").replaceChildren(
    table(
      ["Started", "Kind", "Duration", "Batches", "Requested", "OK", "Failed", "Per source"],
      data.runs.map((r) => [
        when(r.started_at),
        r.kind,
        secs(r.duration_seconds),
        r.batches,
        r.symbols_requested,
        r.symbols_succeeded,
        r.symbols_failed ? badge(String(r.symbols_failed), "bad") : "0",
        Object.entries(r.source_counts || {}).map(([k, v]) => `${k}: ${v}`).join(", ") || "—",
      ]),
    ),
  );
  document.getElementById("problems").replaceChildren(
    table(
      ["Symbol", "Status", "Since", "Last error"],
      data.problem_symbols.map((p) => [
        p.symbol,
        badge(p.status, p.status === "unknown" ? "warn" : "bad"),
        when(p.unknown_since || p.updated_at),
        p.last_error || "—",
      ]),
    ),
  );
}

const age = (s) => (s == null ? "no trade yet" : `${Number(s).toFixed(1)} s ago`);

// The stream process: its state, rates and each followed symbol's last trade age.
function streamParts(stream) {
  if (!stream) return [h("p", { class: "muted" }, "Stream state not available on this build.")];
  if (stream.error) return [h("p", { class: "down" }, `Stream state failed: ${stream.error}`)];
  if (!stream.enabled) return [h("p", { class: "muted" }, "Streaming is off (MARKET_STREAM_SOURCE is empty).")];
  if (!stream.running) return [badge("not running", "bad")];
  const state = stream.connected ? badge("connected", "ok") : badge("disconnected", "bad");
  const facts = h(
    "p",
    { id: "stream-facts" },
    state,
    ` ${stream.source} · ${stream.symbols_followed} of at most ${stream.max_symbols} symbols followed · `,
    `${stream.messages_per_second} messages/s, ${stream.trades_per_second} trades/s · flush every ${stream.flush_ms} ms · `,
    `${stream.reconnects} reconnects`,
    ...(stream.flush_times_ms?.flush_p50 != null
      ? [` · a flush takes ${stream.flush_times_ms.flush_p50} ms (p99 ${stream.flush_times_ms.flush_p99} ms)`]
      : []),
    ...(stream.last_error ? [` · last error: ${stream.last_error}`] : []),
  );
  const symbols = Object.entries(stream.symbols || {}).map(([symbol, s]) => [symbol, when(s.last_trade_at), age(s.last_trade_age_seconds)]);
  return [facts, table(["Symbol", "Last trade", "Age"], symbols)];
}

async function refresh() {
  const error = document.getElementById("status-error");
  try {
    const response = await fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    error.textContent = "";
    document.getElementById("status-refreshed").textContent = new Date().toLocaleTimeString();
  } catch (exc) {
    error.textContent = `· refresh failed: ${exc.message}`;
  }
}

document.getElementById("status-interval").textContent = String(REFRESH_MS / 1000);
refresh();
setInterval(refresh, REFRESH_MS);
