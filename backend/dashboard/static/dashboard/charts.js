// Inline SVG charts: a sparkline per symbol and value-over-time charts (a portfolio's, with an
// optional second line such as a benchmark drawn on the same axes).
const SVG_NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

// x is the index, or the time when `times` is given (snapshots are not evenly spaced).
// `bounds` ({min, max, t0, t1}) puts several series on the same axes.
function scale(values, width, height, pad = 2, times = null, bounds = null) {
  const min = bounds ? bounds.min : Math.min(...values);
  const max = bounds ? bounds.max : Math.max(...values);
  const span = max - min || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const t0 = bounds && times ? bounds.t0 : times ? times[0] : 0;
  const tSpan = bounds && times ? bounds.t1 - t0 : times ? times[times.length - 1] - t0 : 0;
  const x = (i) => (times && tSpan > 0 ? ((times[i] - t0) / tSpan) * width : i * step);
  return values.map((v, i) => [x(i), pad + (height - 2 * pad) * (1 - (v - min) / span)]);
}

const fmtPoints = (points) => points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");

/** Draws a sparkline of `values` into `container` (replacing what was there). */
export function drawSparkline(container, values) {
  if (!container) return;
  container.replaceChildren();
  if (!values || values.length < 2) return;
  const width = 100;
  const height = 24;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true" });
  const rising = values[values.length - 1] >= values[0];
  svg.append(el("polyline", { points: fmtPoints(scale(values, width, height)), class: rising ? "rise" : "fall" }));
  container.append(svg);
}

const EMPTY_TEXT = "The value chart fills in as the portfolio is revalued.";

/** Draws a value chart of `points` ({t, v}) into an existing <svg viewBox="0 0 600 140">.
 * `overlay` ({t, v} points, in the same unit) is drawn as a second line on the same axes;
 * `caption` (a node) gets the time span and the range unless it is null. */
export function drawValueChart(svg, points, caption, formatMoney, { overlay = null, emptyText = EMPTY_TEXT } = {}) {
  if (!svg) return;
  svg.replaceChildren();
  const [, , width, height] = (svg.getAttribute("viewBox") || "0 0 600 140").split(/\s+/).map(Number);
  if (!points || points.length < 2) {
    svg.append(el("text", { x: 8, y: height / 2, class: "empty" }));
    svg.lastChild.textContent = emptyText;
    if (caption) caption.textContent = "";
    return;
  }
  const second = overlay && overlay.length >= 2 ? overlay : [];
  const all = [...points, ...second];
  const values = all.map((p) => p.v);
  const times = all.map((p) => Date.parse(p.t));
  const timed = times.every(Number.isFinite);
  const bounds = {
    min: Math.min(...values),
    max: Math.max(...values),
    t0: timed ? Math.min(...times) : 0,
    t1: timed ? Math.max(...times) : 0,
  };
  const line = (series) =>
    scale(
      series.map((p) => p.v),
      width,
      height,
      6,
      timed ? series.map((p) => Date.parse(p.t)) : null,
      second.length && timed ? bounds : null,
    );
  const xy = line(points);
  const [left, right] = [xy[0][0].toFixed(1), xy[xy.length - 1][0].toFixed(1)];
  svg.append(el("polygon", { class: "area", points: `${left},${height} ${fmtPoints(xy)} ${right},${height}` }));
  svg.append(el("polyline", { class: "line", points: fmtPoints(xy) }));
  if (second.length) svg.append(el("polyline", { class: "overlay", points: fmtPoints(line(second)) }));
  if (caption) {
    const own = points.map((p) => p.v);
    const first = new Date(points[0].t);
    const last = new Date(points[points.length - 1].t);
    caption.textContent =
      `${first.toLocaleString()} – ${last.toLocaleTimeString()} · ` +
      `low ${formatMoney(Math.min(...own))} · high ${formatMoney(Math.max(...own))}`;
  }
}
