// Tiny DOM helpers: h() builds elements without innerHTML (so no markup is ever parsed from data).
export const $ = (id) => document.getElementById(id);

/** h("button", { class: "x", onclick: fn, "aria-label": "..." }, "text", child...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** An SVG element with attributes (all set with setAttribute). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  el.append(...children.flat().filter(Boolean));
  return el;
}

export const ms = (v) => (v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);
export const usd = (v) => (v ? `$${v < 0.01 ? v.toFixed(4) : v.toFixed(2)}` : "$0");

/** Make `el` a drop target for files; `onFiles(FileList)` gets what was dropped. */
export function dropTarget(el, onFiles) {
  for (const name of ["dragenter", "dragover"]) el.addEventListener(name, (e) => { e.preventDefault(); el.classList.add("over"); });
  el.addEventListener("dragleave", () => el.classList.remove("over"));
  el.addEventListener("drop", (e) => { e.preventDefault(); el.classList.remove("over"); onFiles(e.dataTransfer.files); });
}

/** Offer `data` (an object) as a JSON file download. */
export function downloadJSON(name, data) {
  const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
