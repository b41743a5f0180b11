// Inline SVG charts: a sparkline per symbol and a portfolio value-over-time chart.
const SVG_NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

// x is the index, or the time when `times` is given (snapshots are not evenly spaced).
function scale(values, width, height, pad = 2, times = null) {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const span = max - min || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const t0 = times ? times[0] : 0;
  const tSpan = times ? times[times.length - 1] - t0 : 0;
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

/** Draws a value chart of `points` ({t, v}) into an existing <svg viewBox="0 0 600 140">. */
export function drawValueChart(svg, points, caption, formatMoney) {
  if (!svg) return;
  svg.replaceChildren();
  const [, , width, height] = (svg.getAttribute("viewBox") || "0 0 600 140").split(/\s+/).map(Number);
  if (!points || points.length < 2) {
    svg.append(el("text", { x: 8, y: height / 2, class: "empty" }));
    svg.lastChild.textContent = "The value chart fills in as the portfolio is revalued.";
    if (caption) caption.textContent = "";
    return;
  }
  const values = points.map((p) => p.v);
  const times = points.map((p) => Date.parse(p.t));
  const xy = scale(values, width, height, 6, times.every(Number.isFinite) ? times : null);
  svg.append(el("polygon", { class: "area", points: `0,${height} ${fmtPoints(xy)} ${width},${height}` }));
  svg.append(el("polyline", { class: "line", points: fmtPoints(xy) }));
  if (caption) {
    const first = new Date(points[0].t);
    const last = new Date(points[points.length - 1].t);
    caption.textContent =
      `${first.toLocaleString()} – ${last.toLocaleTimeString()} · ` +
      `low ${formatMoney(Math.min(...values))} · high ${formatMoney(Math.max(...values))}`;
  }
}
