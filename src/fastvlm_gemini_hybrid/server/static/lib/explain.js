// Every answer explains itself: a badge (where it ran, model, latency, tokens, cost) that opens the
// route: the rules that fired, the order of backends, fallbacks and escalation, and what the privacy
// gate found, with its boxes drawn over the picture.
import { h, ms, usd } from "./dom.js";

const KIND_LABEL = { local: "local", cloud: "cloud", browser: "in-browser", router: "hybrid" };

/** The one-line badge text: "local · fastvlm-model · 212 ms · 12 tokens · $0". */
export function badgeText(a) {
  const parts = [KIND_LABEL[a.kind] || a.kind || "server"];
  if (a.device) parts.push(a.device);
  parts.push(a.model || a.backend || "?", ms(a.totalMs));
  if (a.tokens != null) parts.push(`${a.tokens} tokens`);
  if (a.kind !== "browser") parts.push(usd(a.cost || 0));
  if (a.cached) parts.push("cached");
  return parts.join(" · ");
}

/** A picture with the privacy gate's boxes ([x, y, w, h] in the picture's pixels) drawn over it. */
export function boxedPicture(src, boxes, alt) {
  const wrap = h("div", { class: "shot" });
  const img = h("img", { src, alt });
  wrap.append(img);
  const place = () => {
    const { naturalWidth: w, naturalHeight: hh } = img;
    if (!w || !hh) return;
    for (const b of boxes) {
      const [x, y, bw, bh] = b.box;
      const el = h("div", { class: "box", title: b.label, "aria-hidden": "true" }, h("span", { text: b.label }));
      Object.assign(el.style, { left: `${(100 * x) / w}%`, top: `${(100 * y) / hh}%`,
        width: `${(100 * bw) / w}%`, height: `${(100 * bh) / hh}%` });
      el.dataset.box = b.box.join(",");
      wrap.append(el);
    }
  };
  if (img.complete && img.naturalWidth) place(); else img.addEventListener("load", place, { once: true });
  return wrap;
}

/** Boxes for attachment `index` (0-based) from /v1/route's privacy findings ("picture 2" is index 1). */
export function boxesFor(check, index) {
  const out = [];
  for (const f of check?.privacy?.findings || []) {
    const m = /^picture (\d+)/.exec(f.where || "");
    if (!m || Number(m[1]) - 1 !== index) continue;
    for (const box of f.boxes || []) out.push({ box, label: f.kind || f.category });
  }
  return out;
}

function routeLine(a) {
  if (a.kind === "browser") return `answered in this browser by ${a.model} on ${a.device} · nothing left this machine`;
  const r = a.route || {};
  return `answered by ${a.backend} (${a.model}) · mode ${r.mode} · backends allowed: ${(r.backends || []).join(" → ")}`
    + (a.cached ? " · from the cache" : "");
}

function timingLine(a) {
  if (a.kind === "browser") {
    const rate = a.tokensPerS ? ` (${a.tokensPerS.toFixed(1)} tokens/s)` : "";
    return `path: browser-${a.device} · load ${a.reused ? "0 ms (reused)" : ms(a.loadMs)} · first token ${ms(a.firstMs)} · `
      + `generate ${ms(a.generateMs)} · ${a.tokens} tokens${rate}`;
  }
  return `path: server · first piece ${ms(a.firstMs ?? a.totalMs)} · total ${ms(a.totalMs)}`
    + (a.serverMs != null ? ` · server ${ms(a.serverMs)}` : "");
}

const section = (title, ...body) => h("section", {}, h("h3", { text: title }), ...body);
const list = (items) => h("ul", {}, items.map((t) => h("li", {}, t)));

/** The panel the badge opens. `pictures`: [{url, name, kind}] in the order they were sent. */
export function explanation(a) {
  const r = a.route || {};
  const panel = h("div", { class: "why" });
  panel.append(h("p", { class: "route", text: routeLine(a) }), h("p", { class: "timing", text: timingLine(a) }),
    h("p", { class: "fallback", text: (a.skipped || []).map((s) => `${s.device} skipped: ${s.error}`).join(" · ") + (a.fallbackNote || "") }));
  if (a.kind !== "browser") {
    panel.append(section("Rules that fired", list((r.rules || []).map((x) => [h("strong", { text: x.name }), `: ${x.reason}`]))));
    const order = [`Backends in order: ${(r.backends || []).join(" → ") || "none"}`,
      r.cloud_allowed ? "Cloud allowed: yes (the egress gate still inspects whatever would leave)" : "Cloud allowed: no",
      `Domain ${r.domain}, task ${r.task}, latency ${r.latency}`];
    if (r.pinned) order.push(`Pinned to ${r.pinned.backend}${r.pinned.model ? `/${r.pinned.model}` : ""}`);
    if (r.escalate_below != null) order.push(`Escalation: a local answer under confidence ${r.escalate_below} goes on to the next backend`);
    if (a.confidence != null) order.push(`Confidence of this answer: ${a.confidence}`);
    panel.append(section("Route of this answer", list(order)));
    const falls = (a.fallbacks || []).map((f) => `${f.backend} failed (${f.error}); the next backend answered`);
    panel.append(section("Fallbacks and escalations", falls.length ? list(falls) : h("p", { text: "none: the first backend answered" })));
    panel.append(h("section", { class: "privacy" }, h("h3", { text: "What the privacy gate found" }),
      h("p", { class: "pending", text: "inspecting…" })));
  }
  return panel;
}

/** Fill the panel's privacy section from /v1/route's answer (or its failure). */
export function showCheck(panel, check, pictures, onEnlarge) {
  const box = panel.querySelector(".privacy");
  if (!box) return;
  box.replaceChildren(h("h3", { text: "What the privacy gate found" }));
  if (check instanceof Error) {
    box.append(h("p", { text: `could not explain: ${check.message}` }));
    return;
  }
  const p = check.privacy;
  const reasons = check.sensitivity_reasons || [];
  box.append(h("p", { class: "verdict", text: check.sensitive
    ? `Sensitive: kept on this machine${reasons.length ? ` (${reasons.join("; ")})` : ""}`
    : "Not sensitive: the cloud may be used" }));
  if (!p) {
    box.append(h("p", { text: pictures.length ? "no pictures inspected" : "no pictures: only the text was checked" }));
    return;
  }
  const verdicts = { allow: "may be sent to the cloud", redact: "sent to the cloud only with the marked parts blacked out",
    refuse: "never sent to the cloud" };
  box.append(h("p", { text: `Egress verdict: ${p.verdict} (${verdicts[p.verdict] || "see the findings"})` }));
  if (p.findings.length) {
    box.append(list(p.findings.map((f) => `${f.where}: ${f.reason}${f.hard ? " (always kept local)" : ""}`)));
  } else {
    box.append(h("p", { text: "nothing found in the text or pictures" }));
  }
  pictures.forEach((pic, i) => {
    const boxes = boxesFor(check, i);
    if (!boxes.length || pic.kind !== "image") return;
    const shot = boxedPicture(pic.url, boxes, `${pic.name} with ${boxes.length} marked area(s)`);
    box.append(h("figure", {}, h("button", { type: "button", class: "plain", "aria-label": `Enlarge ${pic.name}`,
      onclick: () => onEnlarge?.(pic, boxes) }, shot), h("figcaption", { text: `${pic.name}: ${boxes.map((b) => b.label).join(", ")}` })));
  });
}
