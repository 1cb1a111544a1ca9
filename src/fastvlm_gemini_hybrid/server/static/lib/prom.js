// The Prometheus text format (0.0.4) as rows {name, labels, value}: enough for /metrics' own families.
export function parseProm(text) {
  const rows = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    rows.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return rows;
}

/** Sum of `name`'s rows whose labels match `where`, grouped by the label `by` (or one total). */
export function sum(rows, name, { by, where = {} } = {}) {
  const out = {};
  for (const r of rows) {
    if (r.name !== name || Object.entries(where).some(([k, v]) => r.labels[k] !== v)) continue;
    const key = by ? r.labels[by] ?? "" : "total";
    out[key] = (out[key] || 0) + r.value;
  }
  return by ? out : out.total || 0;
}

/** A histogram's buckets per `by` label: {backend: [[le, cumulative], ...]} sorted by le. */
export function buckets(rows, name, by) {
  const out = {};
  for (const r of rows) {
    if (r.name !== `${name}_bucket`) continue;
    (out[r.labels[by]] ??= []).push([r.labels.le === "+Inf" ? Infinity : Number(r.labels.le), r.value]);
  }
  for (const list of Object.values(out)) list.sort((a, b) => a[0] - b[0]);
  return out;
}

/** The bucket bound under which a fraction q of the observations fall (an upper estimate). */
export function quantile(cumulative, q) {
  const total = cumulative.at(-1)?.[1] || 0;
  if (!total) return null;
  return cumulative.find(([, c]) => c >= q * total)?.[0] ?? null;
}
