// Small SVG charts (no library): grouped bars, lines over time, and a stacked share bar. Each chart is an
// <svg role="img"> whose aria-label says in words what it draws; colours come from the CSS classes s0..s5.
import { h, s } from "./dom.js";

const W = 360;
const H = 170;
const PAD = { l: 44, r: 8, t: 8, b: 28 };

function frame(svg, label, max, fmt) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.classList.add("chart");
  svg.append(s("title", {}, label));
  for (const f of [0, 0.5, 1]) {
    const y = PAD.t + (1 - f) * (H - PAD.t - PAD.b);
    svg.append(s("line", { class: "grid", x1: PAD.l, x2: W - PAD.r, y1: y, y2: y }),
      s("text", { x: PAD.l - 4, y: y + 4, "text-anchor": "end" }, fmt(max * f)));
  }
}

const top = (v) => (v <= 0 ? 1 : v * 1.1);
const cls = (item, j) => item.cls || `s${j % 6}`;

/** Grouped bars: `groups` label the x axis; each series gives one value per group. */
export function bars(svg, { label, groups, series, fmt = String }) {
  const max = top(Math.max(0, ...series.flatMap((x) => x.values)));
  frame(svg, label, max, fmt);
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  const gw = plotW / Math.max(1, groups.length);
  const bw = Math.max(2, (gw * 0.8) / Math.max(1, series.length));
  groups.forEach((g, i) => {
    series.forEach((ser, j) => {
      const v = ser.values[i] || 0;
      const bh = (v / max) * plotH;
      svg.append(s("rect", { class: `bar ${cls(ser, j)}`, x: PAD.l + i * gw + gw * 0.1 + j * bw, y: PAD.t + plotH - bh, width: bw - 1, height: bh },
        s("title", {}, `${ser.name}, ${g}: ${v}`)));
    });
    const step = Math.ceil(groups.length / 7);
    if (i % step === 0) svg.append(s("text", { x: PAD.l + i * gw + gw / 2, y: H - 10, "text-anchor": "middle" }, g));
  });
}

/** Lines over time: each series' points are [time ms, value]. */
export function lines(svg, { label, series, fmt = String }) {
  const all = series.flatMap((x) => x.points);
  const max = top(Math.max(0, ...all.map((p) => p[1])));
  frame(svg, label, max, fmt);
  if (!all.length) return;
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(t0 + 1, ...all.map((p) => p[0]));
  const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v) => PAD.t + (1 - v / max) * (H - PAD.t - PAD.b);
  series.forEach((ser, j) => {
    if (!ser.points.length) return;
    const d = ser.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg.append(s("path", { class: `line ${cls(ser, j)}`, d }, s("title", {}, `${ser.name}: ${fmt(ser.points.at(-1)[1])} now`)));
  });
  const ago = Math.round((t1 - t0) / 1000);
  svg.append(s("text", { x: PAD.l, y: H - 10 }, `${ago} s ago`), s("text", { x: W - PAD.r, y: H - 10, "text-anchor": "end" }, "now"));
}

/** One bar split by share; `parts` are [{name, value}]. */
export function share(svg, { label, parts }) {
  const total = parts.reduce((a, p) => a + p.value, 0);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} 36`);
  svg.setAttribute("role", "img");
  svg.classList.add("chart");
  const words = total ? parts.map((p) => `${p.name} ${Math.round((100 * p.value) / total)}%`).join(", ") : "no data yet";
  svg.setAttribute("aria-label", `${label}: ${words}`);
  svg.append(s("title", {}, `${label}: ${words}`));
  let x = 0;
  parts.forEach((p, j) => {
    if (!total || !p.value) return;
    const w = (p.value / total) * W;
    svg.append(s("rect", { class: `part ${cls(p, j)}`, "data-name": p.name, x, y: 4, width: w, height: 28, rx: 3 }, s("title", {}, `${p.name}: ${p.value}`)));
    x += w;
  });
  if (!total) svg.append(s("rect", { class: "grid", x: 0, y: 4, width: W, height: 28, rx: 3, fill: "none" }));
}

/** A legend: names (strings, coloured s0, s1, ...) or {name, cls} as the chart drew them. */
export const legend = (items) => h("ul", { class: "legend" }, items.map((x, j) =>
  h("li", {}, h("i", { class: typeof x === "string" ? `s${j % 6}` : cls(x, j) }), typeof x === "string" ? x : x.name)));
