// Price alerts on the dashboard: a bell on every symbol's row opens a dialog to create and
// delete that symbol's alerts (/api/alerts/); a fired alert (a `notification` of kind
// price_alert) shows a toast and joins the unread list under the bell in the top bar
// (/api/notifications/?unread=true, read again after every (re)connect, so what fired while
// the page was offline shows up too); "Mark read" marks one (POST .../read/).

const BELL = '<svg class="bell" viewBox="0 0 24 24" width="15" height="15" aria-hidden="true"><path fill="currentColor" d="M12 22a2 2 0 0 0 2-2h-4a2 2 0 0 0 2 2zm6-6v-5a6 6 0 0 0-5-5.9V4a1 1 0 0 0-2 0v1.1A6 6 0 0 0 6 11v5l-2 2v1h16v-1l-2-2z"/></svg>';

const CONDITIONS = {
  above: "Price at or above",
  below: "Price at or below",
  change_percent_above: "Today's change % at or above",
  change_percent_below: "Today's change % at or below",
};

export function initAlerts({ client, api, showToast }) {
  const alerts = new Map(); // id -> alert
  const unread = new Map(); // event id -> notification
  const dialog = document.getElementById("alert-dialog");
  const form = document.getElementById("alert-form");
  const list = document.getElementById("alert-list");
  const none = dialog.querySelector(".alert-none");
  const message = document.getElementById("alert-message");
  const toggle = document.getElementById("notif-toggle");
  const panel = document.getElementById("notif-panel");
  const count = document.getElementById("notif-count");
  const notifList = document.getElementById("notif-list");
  const notifEmpty = panel.querySelector(".notif-empty");
  let symbol = null; // the dialog's symbol

  const describe = (a) =>
    `${CONDITIONS[a.condition] || a.condition} ${a.threshold}${a.condition.startsWith("change_percent") ? " %" : ""}`;

  function say(text) {
    message.textContent = text || "";
    message.hidden = !text;
  }

  // --- bells on symbol rows -------------------------------------------------------------

  function bell(sym) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "alert-btn";
    button.dataset.alertSymbol = sym;
    button.setAttribute("aria-label", `Alerts for ${sym}`);
    button.title = `Alerts for ${sym}`;
    button.innerHTML = BELL;
    return button;
  }

  function decorate() {
    for (const row of document.querySelectorAll(".positions tr[data-symbol], #watchlist li[data-symbol]")) {
      if (row.querySelector(".alert-btn")) continue;
      const button = bell(row.dataset.symbol);
      if (row.tagName === "TR") row.querySelector("th").append(" ", button);
      else row.insertBefore(button, row.querySelector(".remove"));
    }
    markBells();
  }

  function markBells() {
    const watched = new Set([...alerts.values()].filter((a) => a.active).map((a) => a.symbol));
    for (const button of document.querySelectorAll(".alert-btn")) {
      button.classList.toggle("has-alerts", watched.has(button.dataset.alertSymbol));
    }
  }

  // --- the dialog -------------------------------------------------------------------------

  function renderList() {
    const mine = [...alerts.values()].filter((a) => a.symbol === symbol);
    list.replaceChildren(
      ...mine.map((a) => {
        const li = document.createElement("li");
        li.dataset.alertId = String(a.id);
        li.dataset.active = String(a.active);
        const text = document.createElement("span");
        text.textContent = `${describe(a)} · ${a.repeat === "rearm" ? "every time" : "once"}${a.active ? "" : " · done"}`;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "alert-delete";
        remove.textContent = "Delete";
        remove.setAttribute("aria-label", `Delete alert ${describe(a)}`);
        li.append(text, remove);
        return li;
      }),
    );
    none.hidden = mine.length > 0;
  }

  function open(sym) {
    symbol = sym;
    dialog.querySelector(".alert-symbol").textContent = sym;
    form.reset();
    say("");
    renderList();
    dialog.showModal();
    form.elements.threshold.focus();
  }

  async function loadAlerts() {
    try {
      const result = await api("GET", "/api/alerts/");
      if (!result.ok) return;
      alerts.clear();
      for (const a of result.data) alerts.set(a.id, a);
      markBells();
      if (dialog.open) renderList();
    } catch {
      // offline: the next (re)connect loads them
    }
  }

  async function create() {
    const threshold = form.elements.threshold.value.trim();
    if (!threshold || Number.isNaN(Number(threshold))) {
      say("Give a number for the threshold, e.g. 200 or 2.5.");
      return;
    }
    const body = { symbol, condition: form.elements.condition.value, threshold, repeat: form.elements.repeat.value };
    let result;
    try {
      result = await api("POST", "/api/alerts/", body);
    } catch {
      say("Could not reach the server; try again.");
      return;
    }
    if (!result.ok) {
      const data = result.data || {};
      if (data.error === "alert_limit") say("You have the maximum number of active alerts: delete one first.");
      else say(Object.values(data).flat().join(" ") || `Could not create the alert (HTTP ${result.status}).`);
      return;
    }
    alerts.set(result.data.id, result.data);
    form.elements.threshold.value = "";
    say("");
    renderList();
    markBells();
    showToast(`Alert set: ${symbol} ${describe(result.data).toLowerCase()}`);
  }

  async function remove(id) {
    let result;
    try {
      result = await api("DELETE", `/api/alerts/${id}/`);
    } catch {
      say("Could not reach the server; try again.");
      return;
    }
    if (!result.ok && result.status !== 404) {
      say(`Could not delete the alert (HTTP ${result.status}).`);
      return;
    }
    alerts.delete(id);
    renderList();
    markBells();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    create();
  });
  dialog.querySelector(".alert-close").addEventListener("click", () => dialog.close());
  list.addEventListener("click", (event) => {
    const button = event.target.closest(".alert-delete");
    if (button) remove(Number(button.closest("li").dataset.alertId));
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest(".alert-btn");
    if (button) open(button.dataset.alertSymbol);
  });

  // --- notifications ---------------------------------------------------------------------

  function renderUnread() {
    const items = [...unread.values()].sort((a, b) => b.event_id - a.event_id);
    notifList.replaceChildren(
      ...items.map((n) => {
        const li = document.createElement("li");
        li.dataset.eventId = String(n.event_id);
        const text = document.createElement("span");
        text.textContent = n.message;
        const when = document.createElement("small");
        when.className = "muted";
        when.textContent = new Date(n.triggered_at).toLocaleString();
        const read = document.createElement("button");
        read.type = "button";
        read.className = "notif-read";
        read.textContent = "Mark read";
        li.append(text, when, read);
        return li;
      }),
    );
    notifEmpty.hidden = items.length > 0;
    count.textContent = String(items.length);
    count.hidden = items.length === 0;
    toggle.setAttribute("aria-label", `Notifications: ${items.length} unread`);
  }

  async function loadUnread() {
    try {
      const result = await api("GET", "/api/notifications/?unread=true");
      if (!result.ok) return;
      unread.clear();
      for (const n of result.data) unread.set(n.event_id, n);
      renderUnread();
    } catch {
      // offline: the next (re)connect catches up
    }
  }

  async function markRead(eventId) {
    try {
      const result = await api("POST", `/api/notifications/${eventId}/read/`);
      if (!result.ok && result.status !== 404) return;
    } catch {
      return;
    }
    unread.delete(eventId);
    renderUnread();
  }

  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
  });
  notifList.addEventListener("click", (event) => {
    const button = event.target.closest(".notif-read");
    if (button) markRead(Number(button.closest("li").dataset.eventId));
  });

  client.onMessageType("notification", (data) => {
    if (data.kind !== "price_alert") return;
    showToast(data.message);
    unread.set(data.event_id, data);
    renderUnread();
    const alert = alerts.get(data.alert_id);
    if (alert && alert.repeat === "once") alert.active = false;
    markBells();
    if (dialog.open) renderList();
  });
  // Every (re)connect: what fired while this page was not connected.
  client.onMessageType("connection", () => {
    loadUnread();
    loadAlerts();
  });

  new MutationObserver(decorate).observe(document.querySelector(".layout"), { childList: true, subtree: true });
  decorate();
  loadAlerts();
  loadUnread();
  return { alerts, unread, open };
}
