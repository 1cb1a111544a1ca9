// The dashboard: /metrics (Prometheus text, parsed here) read every few seconds while the view is open,
// drawn as charts: latency by backend, requests per minute, answers by backend, cache, cost per hour,
// privacy verdicts, circuit states and the queue. Rates come from the difference between two reads.
import { api } from "../lib/api.js";
import { bars, legend, lines, share } from "../lib/charts.js";
import { h, ms, s, usd } from "../lib/dom.js";
import { buckets, parseProm, quantile, sum } from "../lib/prom.js";

const P = "fastvlm_hybrid_";
const KEEP = 300;        // samples kept for the lines (10 minutes at 2 s)
const samples = [];
let timer = null;
const colours = {};  // one colour per backend in every chart

const card = (id, title, ...body) => h("section", { class: "card", id, "aria-labelledby": `${id}-h` }, h("h2", { id: `${id}-h`, text: title }), ...body);
const svg = (id) => s("svg", { id, class: "chart" });

export function mount(root) {
  root.append(
    h("div", { class: "row" }, h("h2", { text: "Dashboard", class: "sr-only" }),
      h("label", {}, "Refresh ", h("select", { id: "dash-every", onchange: start },
        new Option("every 2 s", "2000"), new Option("every 5 s", "5000"), new Option("every 15 s", "15000"), new Option("paused", "0"))),
      h("span", { id: "dash-updated", class: "hint", "aria-live": "polite" })),
    h("div", { id: "kpis", class: "kpis" }),
    h("div", { class: "dash" },
      card("latency", "Latency by backend", svg("latency-chart"), h("div", { id: "latency-legend" })),
      card("rate", "Requests per minute", svg("rate-chart"), h("div", { id: "rate-legend" })),
      card("backends", "Answers by backend", svg("share-chart"), h("div", { id: "share-legend" })),
      card("cache", "Cache", svg("cache-chart"), h("p", { id: "cache-text", class: "hint" })),
      card("cost", "Cost per hour", svg("cost-chart"), h("p", { id: "cost-text", class: "hint" })),
      card("privacy", "Privacy verdicts", svg("privacy-chart"), h("div", { id: "privacy-legend" })),
      card("queue", "Queue", svg("queue-chart"), legend([{ name: "running", cls: "s-ok" }, { name: "waiting", cls: "s-warn" }])),
      card("circuits", "Circuit breakers", h("div", { id: "circuit-list", class: "circuit" }),
        h("p", { class: "hint", text: "closed: calls go through; open: the backend is skipped after failures; half-open: one trial call." }))),
    h("p", { id: "dash-error", class: "error", role: "alert" }));
  start();
  return { show: start, hide: () => clearInterval(timer) };
}

function start() {
  clearInterval(timer);
  const every = Number(document.getElementById("dash-every").value);
  read();
  if (every) timer = setInterval(read, every);
}

async function read() {
  const error = document.getElementById("dash-error");
  try {
    const rows = parseProm(await (await api("/metrics")).text());
    samples.push({ t: Date.now(), rows });
    if (samples.length > KEEP) samples.shift();
    draw(rows);
    error.textContent = "";
    document.getElementById("dash-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    error.textContent = err.status === 501 ? `metrics are off on this server: ${err.message}` : `could not read /metrics: ${err.message}`;
  }
}

/** Per-minute (or per-hour) rate of a counter between consecutive samples: [[t, rate], ...]. */
function rate(pick, per = 60000) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = samples[i].t - samples[i - 1].t;
    if (dt > 0) out.push([samples[i].t, Math.max(0, ((pick(samples[i].rows) - pick(samples[i - 1].rows)) * per) / dt)]);
  }
  return out;
}

const kpi = (value, label) => h("div", { class: "kpi" }, h("b", { text: value }), h("span", { text: label }));

function draw(rows) {
  const calls = sum(rows, `${P}requests_total`);
  const ok = sum(rows, `${P}requests_total`, { by: "backend", where: { outcome: "ok" } });
  const byBackend = sum(rows, `${P}requests_total`, { by: "backend" });
  const cache = sum(rows, `${P}cache_total`, { by: "result" });
  const cost = sum(rows, `${P}cost_usd_total`, { by: "backend" });
  const hist = buckets(rows, `${P}request_seconds`, "backend");
  const names = Object.keys(byBackend).sort();
  for (const b of [...names, ...Object.keys(hist)]) if (!(b in colours)) colours[b] = `s${Object.keys(colours).length % 6}`;
  const perMin = rate((r) => sum(r, `${P}requests_total`));
  const costHour = rate((r) => sum(r, `${P}cost_usd_total`), 3600000);
  const all = Object.values(hist).reduce((acc, list) => list.map(([le, c], i) => [le, c + (acc[i]?.[1] || 0)]), []);
  const p50 = quantile(all, 0.5);
  const hits = cache.hit || 0;
  const lookups = hits + (cache.miss || 0);
  const totalCost = Object.values(cost).reduce((a, b) => a + b, 0);

  document.getElementById("kpis").replaceChildren(
    kpi(String(calls), "backend calls"), kpi(perMin.length ? perMin.at(-1)[1].toFixed(1) : "–", "per minute now"),
    kpi(p50 == null ? "–" : `≤ ${ms(p50 * 1000)}`, "median latency"), kpi(lookups ? `${Math.round((100 * hits) / lookups)}%` : "–", "cache hits"),
    kpi(usd(totalCost), "spent"), kpi(String(sum(rows, `${P}queue_waiting`)), "waiting now"));

  // latency: the share of each backend's calls in each bucket (buckets are cumulative: take differences)
  const edges = (hist[names[0]] || Object.values(hist)[0] || []).map(([le]) => le);
  const label = (le, i) => (le === Infinity ? `>${edges[i - 1]}s` : le < 1 ? `${le * 1000}ms` : `${le}s`);
  const latencyNames = Object.keys(hist).sort();
  const series = latencyNames.map((b) => ({ name: b, cls: colours[b], values: hist[b].map(([, c], i) => c - (i ? hist[b][i - 1][1] : 0)) }));
  const summary = latencyNames.map((b) => `${b}: median ≤ ${ms(quantile(hist[b], 0.5) * 1000)}, 95% ≤ ${ms(quantile(hist[b], 0.95) * 1000)}`).join("; ");
  bars(document.getElementById("latency-chart"), { label: `Calls per latency bucket by backend. ${summary || "no calls yet"}`,
    groups: edges.map(label), series });
  document.getElementById("latency-legend").replaceChildren(legend(latencyNames.map((b) =>
    ({ name: `${b} (median ≤ ${ms(quantile(hist[b], 0.5) * 1000)}, p95 ≤ ${ms(quantile(hist[b], 0.95) * 1000)})`, cls: colours[b] }))));

  const rateSeries = [{ name: "all backends", cls: "s-all", points: perMin },
    ...names.map((b) => ({ name: b, cls: colours[b], points: rate((r) => sum(r, `${P}requests_total`, { where: { backend: b } })) }))];
  lines(document.getElementById("rate-chart"), { label: `Backend calls per minute; now ${perMin.length ? perMin.at(-1)[1].toFixed(1) : "unknown (needs two reads)"}`,
    series: rateSeries, fmt: (v) => v.toFixed(v < 10 ? 1 : 0) });
  document.getElementById("rate-legend").replaceChildren(legend(rateSeries));

  const parts = Object.keys(ok).sort().map((b) => ({ name: b, value: ok[b], cls: colours[b] }));
  share(document.getElementById("share-chart"), { label: "Answers by backend", parts });
  document.getElementById("share-legend").replaceChildren(legend(parts.map((p) => ({ ...p, name: `${p.name}: ${p.value}` }))));

  share(document.getElementById("cache-chart"), { label: "Cache lookups", parts: [{ name: "hit", value: hits, cls: "s-ok" }, { name: "miss", value: cache.miss || 0, cls: "s-muted" }] });
  document.getElementById("cache-text").textContent = `hits: ${hits} of ${lookups} lookups`;

  lines(document.getElementById("cost-chart"), { label: `Estimated spend per hour; total ${usd(totalCost)}`, series: [{ name: "all backends", cls: "s-all", points: costHour }], fmt: usd });
  document.getElementById("cost-text").textContent = Object.entries(cost).map(([b, v]) => `${b}: ${usd(v)}`).join(" · ") || "no spend yet";

  const verdicts = sum(rows, `${P}privacy_verdicts_total`, { by: "verdict" });
  const vparts = [["allow", "s-ok"], ["redact", "s-warn"], ["refuse", "s-bad"]].map(([v, c]) => ({ name: v, value: verdicts[v] || 0, cls: c }));
  share(document.getElementById("privacy-chart"), { label: "Egress gate verdicts", parts: vparts });
  document.getElementById("privacy-legend").replaceChildren(legend(vparts.map((p) => ({ ...p, name: `${p.name}: ${p.value}` }))));

  const queue = (name) => samples.map((x) => [x.t, sum(x.rows, `${P}queue_${name}`)]);
  lines(document.getElementById("queue-chart"), { label: `Requests running and waiting; now ${sum(rows, `${P}queue_running`)} running, ${sum(rows, `${P}queue_waiting`)} waiting`,
    series: [{ name: "running", cls: "s-ok", points: queue("running") }, { name: "waiting", cls: "s-warn", points: queue("waiting") }] });

  const circuits = rows.filter((r) => r.name === `${P}circuit_state` && r.value > 0);
  document.getElementById("circuit-list").replaceChildren(...(circuits.length
    ? circuits.map((r) => h("span", { class: "pill", "data-state": r.labels.state, text: `${r.labels.backend}: ${r.labels.state}` }))
    : [h("span", { class: "hint", text: "no backend with a circuit breaker has been called yet" })]));
}
