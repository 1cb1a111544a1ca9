// The surveillance view, after Frigate: a clip, zones drawn and edited on its frame (kept as the zones YAML
// that `fastvlm-hybrid surveil --zones` reads), the surveillance agent run as a job with its alerts
// arriving over SSE, and the alerts as a timeline under the video: a click seeks there and draws the box.
// Or a live stream URL that the server opens (where its operator allowed that host) for a set duration:
// there is no local video to seek then, so a click shows the alert's time, description and box.
import { api, readSSE } from "../lib/api.js";
import { $, h, s } from "../lib/dom.js";

let clip = null;
let zones = [];          // [{name, polygon: [[x, y], ...], restricted, loiter_s}]
let drawing = null;      // the polygon being drawn, or null
let events = [];
let selected = -1;
let live = 0;            // seconds of stream the last run watched; 0 when it ran on the clip

export function mount(root) {
  root.append(h("div", { class: "agent surv" },
    h("section", { class: "card", "aria-labelledby": "surv-title" },
      h("h2", { id: "surv-title", text: "Clip and events" }),
      h("div", { class: "row" }, h("label", { class: "button" }, "Choose a clip",
        h("input", { id: "surv-file", type: "file", accept: "video/*", class: "sr-only", onchange: (e) => setClip(e.target.files[0]) })),
        h("span", { id: "surv-name", class: "hint", text: "no clip yet" })),
      h("div", { class: "row stream" },
        h("label", { for: "surv-stream" }, "Stream URL"),
        h("input", { id: "surv-stream", type: "url", placeholder: "rtsp://camera.lan/stream", autocomplete: "off", spellcheck: false,
          "aria-describedby": "surv-stream-hint", oninput: sourceChanged }),
        h("label", { for: "surv-duration" }, "Duration (s)"),
        h("input", { id: "surv-duration", type: "number", min: 1, step: 1, value: "60" })),
      h("p", { id: "surv-stream-hint", class: "hint", text: "Or watch a live stream (rtsp, http, tcp…) instead of the clip, for the duration: the server opens it if its operator allowed that host. A clip from the same camera can stay to draw the zones on." }),
      h("div", { id: "surv-setup", class: "setup", hidden: true }),
      h("div", { class: "player", id: "surv-player" },
        h("video", { id: "surv-video", controls: true, muted: true, playsinline: true, preload: "auto", "aria-label": "The clip" }),
        s("svg", { id: "surv-overlay", preserveAspectRatio: "xMidYMid meet", viewBox: "0 0 320 240", "aria-hidden": "true" })),
      h("h3", { text: "Events" }),
      h("div", { id: "surv-timeline", class: "timeline", role: "group", "aria-label": "Timeline of events" },
        h("div", { id: "surv-playhead", class: "playhead" })),
      h("ol", { id: "surv-events", class: "events" }),
      h("div", { id: "surv-detail", "aria-live": "polite" })),
    h("section", { class: "card", "aria-labelledby": "zones-title" },
      h("h2", { id: "zones-title", text: "Zones" }),
      h("p", { class: "hint", text: "Draw a zone: click its corners on the picture, then Finish (or Enter). Drag a corner to move it. Or edit the YAML." }),
      h("div", { class: "row" },
        h("button", { id: "zone-draw", type: "button", onclick: startDrawing }, "Draw a zone"),
        h("button", { id: "zone-finish", type: "button", class: "primary", onclick: finishDrawing, disabled: true }, "Finish zone"),
        h("button", { id: "zone-cancel", type: "button", onclick: () => { drawing = null; render(); }, disabled: true }, "Cancel")),
      h("ul", { id: "zones", class: "zones-list", "aria-label": "Zones" }),
      h("label", { for: "zones-yaml", class: "block" }, "Zones YAML (what fastvlm-hybrid surveil --zones reads)"),
      h("textarea", { id: "zones-yaml", class: "yaml", spellcheck: false }),
      h("div", { class: "row" },
        h("button", { id: "zones-apply", type: "button", onclick: applyYAML }, "Apply the YAML"),
        h("button", { id: "zones-download", type: "button", onclick: downloadYAML }, "Download zones.yaml"),
        h("label", { class: "button" }, "Load zones.yaml", h("input", { id: "zones-load", type: "file", accept: ".yaml,.yml,text/yaml", class: "sr-only",
          onchange: async (e) => { $("zones-yaml").value = await e.target.files[0].text(); applyYAML(); } }))),
      h("h3", { text: "Run" }),
      h("label", { class: "check" }, h("input", { id: "surv-describe", type: "checkbox" }), " Describe each alert with the model (local first)"),
      h("label", {}, "Recording started ", h("input", { id: "surv-start", type: "datetime-local" })),
      h("button", { id: "surv-run", type: "button", class: "primary", onclick: run, disabled: true }, "Run surveillance"),
      h("p", { id: "surv-status", class: "hint", "aria-live": "polite" }),
      h("p", { id: "surv-error", class: "error", role: "alert" }))));
  const video = $("surv-video");
  video.addEventListener("loadedmetadata", () => {
    $("surv-overlay").setAttribute("viewBox", `0 0 ${video.videoWidth} ${video.videoHeight}`);
    $("surv-player").dataset.ready = "1";
    render();
    renderEvents();
  });
  video.addEventListener("timeupdate", playhead);
  $("surv-overlay").addEventListener("click", addPoint);
  document.addEventListener("keydown", (e) => { if (drawing && e.key === "Enter") finishDrawing(); if (drawing && e.key === "Escape") { drawing = null; render(); } });
  render();
}

function setClip(file) {
  if (!file) return;
  clip = file;
  $("surv-name").textContent = file.name;
  $("surv-player").dataset.ready = "";
  $("surv-video").src = URL.createObjectURL(file);
  $("surv-stream").value = "";  // a clip chosen now is what runs
  events = [];
  renderEvents();
  sourceChanged();
}

const streamURL = () => $("surv-stream").value.trim();
const runnable = () => { $("surv-run").disabled = !clip && !streamURL(); };
function sourceChanged() {
  runnable();
  $("surv-setup").hidden = true;
}

/** The server refused the stream (streams off, or the host not listed): its message says which setting to set. */
function showSetup(err) {
  const setting = err.message.match(/FASTVLM_HYBRID_[A-Z_]+(=true)?/g) || [];
  $("surv-setup").replaceChildren(
    h("h3", { text: err.code === "stream_sources_disabled" ? "Live streams are off on this server" : "This stream's host is not allowed" }),
    h("p", { text: err.message }),
    ...setting.map((v) => h("code", { class: "cmd", text: v })),
    h("p", { text: "An operator sets it where the server runs, then restarts it. A clip can be uploaded meanwhile." }));
  $("surv-setup").hidden = false;
}

// ------------------------------------------------------------------ zones: drawing and editing
const svgPoint = (e) => {
  const svg = $("surv-overlay");
  const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(svg.getScreenCTM().inverse());
  const [, , w, hh] = svg.getAttribute("viewBox").split(" ").map(Number);
  return [Math.round(Math.min(Math.max(p.x, 0), w - 1)), Math.round(Math.min(Math.max(p.y, 0), hh - 1))];
};

function startDrawing() {
  drawing = [];
  $("surv-video").pause();
  render();
}

function addPoint(e) {
  if (!drawing) return;
  drawing.push(svgPoint(e));
  render();
}

function finishDrawing() {
  if (!drawing || drawing.length < 3) return;
  zones.push({ name: `zone-${zones.length + 1}`, polygon: drawing, restricted: false, loiter_s: null });
  drawing = null;
  render();
}

function dragVertex(zone, i) {
  return (down) => {
    down.preventDefault();
    down.stopPropagation();
    const move = (e) => { zone.polygon[i] = svgPoint(e); render(false); };
    const up = () => { removeEventListener("pointermove", move); removeEventListener("pointerup", up); render(); };
    addEventListener("pointermove", move);
    addEventListener("pointerup", up);
  };
}

function render(list = true) {
  const svg = $("surv-overlay");
  svg.classList.toggle("editing", Boolean(drawing));
  const shapes = zones.map((z, zi) => s("g", {},
    s("polygon", { class: `zone-shape${z.restricted ? "" : " plain"}`, points: z.polygon.join(" "), "data-zone": z.name }),
    s("text", { class: "zone-label", x: z.polygon[0][0] + 4, y: z.polygon[0][1] + 16 }, z.name),
    ...z.polygon.map((p, i) => s("circle", { class: "vertex", cx: p[0], cy: p[1], r: 5, "data-zone": zi, onpointerdown: dragVertex(z, i) }))));
  if (drawing) {
    shapes.push(s("polyline", { class: "zone-shape", points: drawing.join(" ") }),
      ...drawing.map((p) => s("circle", { class: "vertex", cx: p[0], cy: p[1], r: 4 })));
  }
  const ev = events[selected];
  if (ev?.bbox) shapes.push(s("rect", { class: "event-box", x: ev.bbox[0], y: ev.bbox[1], width: ev.bbox[2], height: ev.bbox[3] }));
  svg.replaceChildren(...shapes);
  $("zone-finish").disabled = !drawing || drawing.length < 3;
  $("zone-cancel").disabled = !drawing;
  $("zone-draw").disabled = Boolean(drawing);
  if (!list) return;
  $("zones").replaceChildren(...zones.map((z, i) => h("li", {},
    h("label", {}, "Name ", h("input", { type: "text", value: z.name, "aria-label": `Name of zone ${i + 1}`, onchange: (e) => { z.name = e.target.value.trim() || z.name; render(); } })),
    h("label", { class: "check" }, h("input", { type: "checkbox", checked: z.restricted, onchange: (e) => { z.restricted = e.target.checked; render(); } }), " restricted"),
    h("label", {}, "loiter after ", h("input", { type: "number", min: 1, step: 1, value: z.loiter_s ?? "", "aria-label": `Loitering seconds for ${z.name}`,
      onchange: (e) => { z.loiter_s = e.target.value ? Number(e.target.value) : null; render(); } }), " s"),
    h("button", { type: "button", class: "plain danger", "aria-label": `Delete zone ${z.name}`, onclick: () => { zones.splice(i, 1); render(); } }, "Delete"))));
  $("zones-yaml").value = toYAML();
}

// ------------------------------------------------------------------ the zones YAML (docs/video.md)
function toYAML() {
  if (!zones.length) return "zones: []\n";
  return `zones:\n${zones.map((z) => [`  - name: ${JSON.stringify(z.name)}`, `    polygon: ${JSON.stringify(z.polygon).replaceAll(",", ", ")}`,
    z.restricted ? "    restricted: true" : null, z.loiter_s ? `    loiter_s: ${z.loiter_s}` : null].filter(Boolean).join("\n")).join("\n")}\n`;
}

/** Read back what toYAML writes (zones with name, polygon as a flow list, restricted, loiter_s). */
function parseYAML(text) {
  const out = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\s+#.*$/, "").trimEnd();
    if (!line.trim() || /^zones:\s*(\[\])?$/.test(line.trim())) continue;
    const m = /^\s*(-\s+)?(\w+):\s*(.*)$/.exec(line);
    if (!m) throw new Error(`cannot read: ${line.trim()}`);
    const [, dash, key, value] = m;
    if (dash) out.push({ name: "", polygon: [], restricted: false, loiter_s: null });
    const zone = out.at(-1);
    if (!zone) throw new Error(`"${key}" outside a zone (masks and quiet periods: use the CLI's file)`);
    if (key === "name") zone.name = value.replace(/^["']|["']$/g, "");
    else if (key === "polygon") zone.polygon = JSON.parse(value);
    else if (key === "restricted") zone.restricted = value === "true";
    else if (key === "loiter_s") zone.loiter_s = Number(value);
    else throw new Error(`unknown key ${key} (this editor reads name, polygon, restricted, loiter_s)`);
  }
  for (const z of out) if (!z.name || z.polygon.length < 3) throw new Error(`zone "${z.name}" needs a name and at least 3 points`);
  return out;
}

function applyYAML() {
  try {
    zones = parseYAML($("zones-yaml").value);
    $("surv-error").textContent = "";
    render();
  } catch (err) { $("surv-error").textContent = `zones YAML: ${err.message}`; }
}

function downloadYAML() {
  const a = h("a", { href: URL.createObjectURL(new Blob([toYAML()], { type: "text/yaml" })), download: "zones.yaml" });
  document.body.append(a);
  a.click();
  a.remove();
}

// ------------------------------------------------------------------ running the agent as a job
async function run() {
  if (!zones.length) { $("surv-error").textContent = "draw at least one zone first"; return; }
  const form = new FormData();
  const url = streamURL();
  live = url ? Number($("surv-duration").value) || 60 : 0;
  if (url) {
    form.append("stream", url);
    form.append("duration", String(live));
  } else form.append("file", clip, clip.name);
  form.append("zones", toYAML());
  form.append("job", "true");
  if ($("surv-describe").checked) form.append("describe", "true");
  if ($("surv-start").value) form.append("start_time", $("surv-start").value);
  events = [];
  selected = -1;
  renderEvents();
  $("surv-error").textContent = "";
  $("surv-setup").hidden = true;
  $("surv-run").disabled = true;
  $("surv-status").textContent = url ? `Connecting to ${url} for ${live} s…` : "Submitting…";
  try {
    const job = await (await api("/v1/agents/surveillance", { method: "POST", body: form })).json();
    $("surv-status").textContent = `Job ${job.id}: queued`;
    const stream = await api(job.urls.events);
    await readSSE(stream, (ev) => {
      if (ev.type === "state") $("surv-status").textContent = `Job ${job.id}: ${ev.state}${ev.error ? ` (${ev.error.message || ev.error})` : ""}`;
      else if (ev.type === "event") { events.push({ ...ev.event, reason: ev.reason }); renderEvents(); }
      else if (ev.type === "item" && ev.output?.alerts) { events = ev.output.alerts; renderEvents(); }
      else if (ev.type === "item" && !ev.ok) $("surv-error").textContent = ev.error?.message || "the run failed";
    });
  } catch (err) {
    const code = err.body?.error?.code;
    if (code === "stream_sources_disabled" || code === "stream_host_not_allowed") showSetup({ code, message: err.body.error.message });
    else $("surv-error").textContent = err.message;
    $("surv-status").textContent = "";
  } finally {
    runnable();
  }
}

const clock = (t) => `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, "0")}`;
const what = (e) => `${e.type.replace("_", " ")}${e.zone ? ` in ${e.zone}` : ""}`;

function renderEvents() {
  const duration = (!live && $("surv-video").duration) || Math.max(1, live, ...events.map((e) => e.end_s ?? e.start_s));
  const line = $("surv-timeline");
  const lanes = [...new Set(events.map((e) => e.type))];  // one row per kind of event, so spans never hide each other
  line.style.height = `${Math.max(1, lanes.length) * 16 + 8}px`;
  line.replaceChildren($("surv-playhead"), ...events.map((e, i) => {
    const mark = h("button", { type: "button", class: "mark", "data-priority": e.priority, "data-type": e.type,
      "aria-label": `${what(e)} at ${clock(e.start_s)}, ${e.priority} priority`, title: `${what(e)} at ${clock(e.start_s)}`, onclick: () => select(i) });
    Object.assign(mark.style, { left: `${(100 * e.start_s) / duration}%`, top: `${4 + 16 * lanes.indexOf(e.type)}px`,
      width: `${(100 * Math.max(0, (e.end_s ?? e.start_s) - e.start_s)) / duration}%` });
    return mark;
  }));
  $("surv-events").replaceChildren(...events.map((e, i) => h("li", {}, h("button", { type: "button", "aria-pressed": String(i === selected), onclick: () => select(i) },
    h("span", { text: `${clock(e.start_s)} · ${what(e)}` }), h("span", { class: "pill", text: e.priority })))));
}

function select(i) {
  selected = i;
  const e = events[i];
  const video = $("surv-video");
  video.pause();
  if (!live) video.currentTime = e.start_s;  // a stream has no local video to seek
  render(false);
  renderEvents();
  $("surv-detail").replaceChildren(h("h3", { text: `${what(e)} at ${clock(e.start_s)}${live ? " of the stream" : ""}` }),
    h("p", { text: `${e.priority} priority${e.track_id != null ? ` · track ${e.track_id}` : ""}${e.end_s != null ? ` · until ${clock(e.end_s)}` : ""} · box ${e.bbox.join(", ")}` }),
    h("p", { text: e.description || e.reason || "no description (turn on Describe to have the model write one)" }));
}

function playhead() {
  const video = $("surv-video");
  if (video.duration) $("surv-playhead").style.left = `${(100 * video.currentTime) / video.duration}%`;
}
