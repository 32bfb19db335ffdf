// Small inline-SVG charts: a job's 10 probabilities, and training curves.
// Geometry lives in attributes and colours in style.css, so nothing needs inline styles (CSP).

import { fill, svg } from "./dom.js";
import { percent } from "./format.js";

/** Ten bars, one per digit, the predicted one highlighted. */
export function probabilityChart(probabilities, label) {
  const width = 200;
  const height = 92;
  const barArea = 72;
  const ranked = probabilities.map((p, digit) => [p, digit]).sort((a, b) => b[0] - a[0]);
  const summary = ranked.slice(0, 3).map(([p, digit]) => `${digit}: ${percent(p)}`).join(", ");
  const bars = probabilities.map((p, digit) => {
    const h = Math.max(p * barArea, p > 0.001 ? 1 : 0);
    const x = digit * 20 + 3;
    return svg(
      "g",
      { class: digit === label ? "bar top" : "bar" },
      svg("rect", { class: "track", x, y: 0, width: 14, height: barArea }),
      svg("rect", { class: "value", x, y: barArea - h, width: 14, height: h }),
      svg("text", { x: x + 7, y: height - 4, "text-anchor": "middle", text: digit }),
      svg("title", { text: `${digit}: ${percent(p)}` }),
    );
  });
  return svg(
    "svg",
    { class: "probabilities", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Probabilities, highest first: ${summary}` },
    bars,
  );
}

const BOX = { width: 320, height: 200, left: 44, right: 10, top: 24, bottom: 30 };

/**
 * Lines over epochs in `target` (an <svg viewBox="0 0 320 200">).
 * series: [{name, className, points: [[epoch, value], ...], dots}]; x runs from 0 to `epochs`.
 */
export function lineChart(target, { series, epochs, yMin, yMax, format = (v) => v.toFixed(2) }) {
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  let low = yMin ?? Math.min(...values, Infinity);
  let high = yMax ?? Math.max(...values, -Infinity);
  if (!values.length) [low, high] = [yMin ?? 0, yMax ?? 1];
  if (high - low < 1e-6) [low, high] = [low - 0.05, high + 0.05];
  const plotW = BOX.width - BOX.left - BOX.right;
  const plotH = BOX.height - BOX.top - BOX.bottom;
  const x = (epoch) => BOX.left + (epoch / Math.max(epochs, 1)) * plotW;
  const y = (value) => BOX.top + (1 - (value - low) / (high - low)) * plotH;

  const grid = [];
  for (let i = 0; i <= 4; i += 1) {
    const value = low + ((high - low) * i) / 4;
    grid.push(
      svg("line", { class: "grid", x1: BOX.left, x2: BOX.width - BOX.right, y1: y(value), y2: y(value) }),
      svg("text", { class: "tick", x: BOX.left - 4, y: y(value) + 4, "text-anchor": "end", text: format(value) }),
    );
  }
  const step = Math.max(1, Math.ceil(epochs / 10));
  for (let epoch = 0; epoch <= epochs; epoch += step) {
    grid.push(svg("text", { class: "tick", x: x(epoch), y: BOX.height - 14, "text-anchor": "middle", text: epoch }));
  }
  grid.push(svg("text", { class: "tick", x: BOX.left + plotW / 2, y: BOX.height - 1, "text-anchor": "middle", text: "epoch" }));

  const lines = series.map((s) => {
    const points = s.points.filter((p) => Number.isFinite(p[1]));
    return svg(
      "g",
      { class: `series ${s.className}` },
      svg("polyline", { points: points.map(([e, v]) => `${x(e).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }),
      (s.dots ? points : points.slice(-1)).map(([e, v]) => svg("circle", { cx: x(e), cy: y(v), r: 3 })),
    );
  });
  const legend = series.map((s, i) =>
    svg(
      "g",
      { class: `legend series ${s.className}`, transform: `translate(${BOX.width - BOX.right - 150 + i * 76}, 4)` },
      svg("line", { x1: 0, x2: 14, y1: 6, y2: 6 }),
      svg("text", { x: 18, y: 10, text: s.name }),
    ),
  );
  fill(target, grid, lines, legend);
}
