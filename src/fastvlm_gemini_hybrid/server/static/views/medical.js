// The medical view: DICOM files of one study (or one picture and its modality) to /v1/agents/medical, and
// the de-identified draft report: severity (indeterminate shown as such), findings, impression, the
// disclaimer, proof that it stayed on this machine, the audit id, and the JSON to download. Under it the
// slices of the series, rendered by this server (POST /v1/medical/render: pixels only, no model, nothing
// fetched) with a slider and a button per window preset. The page keeps nothing: no history, no storage.
import { api, getJSON } from "../lib/api.js";
import { $, downloadJSON, dropTarget, h } from "../lib/dom.js";
import { status } from "../lib/status.js";

let files = [];
// the slice viewer: what the server offers for these files, what is shown, and the newest request's number
const viewer = { slices: 0, presets: [], window: "", slice: 0, url: "", seq: 0 };

export function mount(root) {
  root.append(h("div", { class: "agent" },
    h("section", { class: "card", "aria-labelledby": "med-title" },
      h("h2", { id: "med-title", text: "Medical: a de-identified draft report" }),
      h("p", { class: "local-proof", text: "The medical agent runs on this machine only: every study is sensitive, the cloud is never asked, and identifiers are removed before the model sees anything." }),
      h("div", { id: "med-drop", class: "dropzone" },
        h("p", {}, "Drop the DICOM files of one study here, or ",
          h("label", { class: "button" }, "pick files", h("input", { id: "med-files", type: "file", multiple: true, class: "sr-only",
            accept: ".dcm,application/dicom,image/png,image/jpeg", onchange: (e) => setFiles(e.target.files) }))),
        h("p", { id: "med-chosen", class: "hint", text: "no files yet" })),
      h("div", { class: "row" },
        h("label", {}, "Modality (needed for PNG or JPEG) ", h("select", { id: "med-modality" }, new Option("from the DICOM files", ""))),
        h("button", { id: "med-run", type: "button", class: "primary", onclick: run, disabled: true }, "Read the study")),
      h("p", { id: "med-status", class: "hint", "aria-live": "polite" }),
      h("p", { id: "med-error", class: "error", role: "alert" })),
    h("div", { class: "med-col" },
      h("section", { id: "med-report", class: "card report", "aria-label": "Report", "aria-live": "polite" },
        h("p", { class: "hint", text: "The report appears here." })),
      h("section", { id: "med-viewer", class: "card slices", "aria-labelledby": "med-viewer-title" },
        h("h2", { id: "med-viewer-title", text: "Slices" }),
        h("p", { class: "local-proof", text: "Rendered on this machine by this server: no model is asked, nothing leaves the machine, and the pictures carry pixels only (no patient data)." }),
        h("div", { id: "med-slices", hidden: true },
          h("img", { id: "med-slice", alt: "" }),
          h("div", { class: "row" },
            h("label", { for: "med-slider", text: "Slice" }),
            h("input", { id: "med-slider", type: "range", min: 0, max: 0, step: 1, value: 0, oninput: (e) => showSlice(+e.target.value) }),
            h("output", { id: "med-slice-label", for: "med-slider" })),
          h("p", { id: "med-window", "aria-live": "polite" }),
          h("div", { id: "med-presets", class: "row presets", role: "group", "aria-label": "Window presets" })),
        h("p", { id: "med-slices-hint", class: "hint", text: "The slices appear here once a study is read (DICOM files only)." })))));
  dropTarget($("med-drop"), setFiles);
  getJSON("/v1/agents/medical").then((agent) => {
    for (const m of agent.options?.properties?.modality?.enum || []) $("med-modality").append(new Option(m, m));
  }).catch(() => {});
}

function setFiles(list) {
  files = [...list];
  // Names are not shown: exported DICOM file names often carry the patient's name.
  $("med-chosen").textContent = files.length ? `${files.length} file(s) chosen (names not shown: they often carry the patient's name)` : "no files yet";
  $("med-run").disabled = !files.length;
  resetViewer("The slices appear here once a study is read (DICOM files only).");
}

async function run() {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  if ($("med-modality").value) form.append("options", JSON.stringify({ modality: $("med-modality").value }));
  $("med-error").textContent = "";
  $("med-status").textContent = "Reading the study on this machine…";
  $("med-run").disabled = true;
  loadSlices();
  try {
    const body = await (await api("/v1/agents/medical", { method: "POST", body: form })).json();
    $("med-report").replaceChildren(...body.items.map((item) => report(item, body.notes || [])));
    $("med-status").textContent = `${body.done} report(s) ready${body.failed ? `, ${body.failed} failed` : ""}.`;
  } catch (err) {
    $("med-error").textContent = err.message;
    $("med-status").textContent = "";
  } finally {
    $("med-run").disabled = !files.length;
  }
}

const row = (label, value) => h("tr", {}, h("th", { scope: "row", text: label }), h("td", {}, value));

function report(item, notes) {
  if (!item.ok) return h("div", {}, h("h3", { text: `Study ${item.input}` }), h("p", { class: "error", text: item.error?.message || "failed" }));
  const r = item.output;
  const route = item.route || {};
  const stayed = route.cloud_allowed === false && (route.backends || []).every((b) => status.kindOf(b) === "local");
  const severity = h("span", { class: "severity", "data-severity": r.severity, text: r.severity });
  const indeterminate = r.severity === "indeterminate"
    ? h("p", { class: "indeterminate", text: `Indeterminate: the severity could not be graded${r.severity_reason ? ` (${r.severity_reason})` : ""}. A clinician must read this study.` })
    : r.severity_reason ? h("p", { class: "hint", text: r.severity_reason }) : null;
  const findings = r.findings?.length
    ? h("table", {}, h("caption", { class: "sr-only", text: "Findings" }),
      h("thead", {}, h("tr", {}, ["Finding", "Where", "Present", "Rule"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, r.findings.map((f) => h("tr", {}, h("td", { text: f.text || f.finding || "" }), h("td", { text: f.location || "–" }),
        h("td", { text: f.present === false ? "no" : "yes" }), h("td", { text: f.rule ? `${f.rule}${f.category != null ? ` (ACR ${f.category})` : ""}` : "–" })))))
    : h("p", { text: "No findings listed." });
  return h("article", { class: "study", "aria-labelledby": `study-${r.report_id}` },
    h("div", { class: "row" }, h("h3", { id: `study-${r.report_id}`, text: `Study ${r.study} · ${r.modality} ${r.body_part}` }), severity),
    indeterminate,
    h("h4", { text: "Findings" }), findings,
    h("h4", { text: "Impression" }), h("p", { text: r.impression || "–" }),
    (r.notifications || []).length ? h("div", {}, h("h4", { text: "Notifications" }), h("ul", {}, r.notifications.map((n) =>
      h("li", { text: `${n.type}: ${n.finding}, communicate within ${n.communicate_within} (${n.status})` })))) : null,
    h("p", { class: stayed ? "local-proof" : "error", text: stayed
      ? `Nothing left this machine: answered by ${item.backend} (${item.model || r.model}), the route allowed no cloud backend (${(route.backends || []).join(", ")}).`
      : `Check the route: it allowed ${(route.backends || []).join(", ")}.` }),
    h("table", { class: "ids" }, h("caption", { class: "sr-only", text: "Identifiers of this report" }), h("tbody", {},
      row("Audit record", h("code", { text: r.audit_id || "none (audit off)" })), row("Report", h("code", { text: r.report_id })),
      row("De-identified", r.deidentified ? "yes" : "NO"),
      row("Series", r.series ? `${r.series.images} image(s), ${r.series.frames} frame(s)` : "–"),
      row("Burned-in text", r.burned_in_text ? `${r.burned_in_text.suspected ? "suspected" : "none seen"}: ${r.burned_in_text.reason}` : "–"),
      row("Created", r.created || "–"))),
    h("p", { class: "hint", text: `The model read ${(r.panels || []).join(", ") || "the study"}; the slices are below.` }),
    notes.length ? h("p", { class: "hint", text: notes.join(" · ") }) : null,
    h("p", { class: "disclaimer", text: r.disclaimer }),
    h("button", { type: "button", class: "download", onclick: () => downloadJSON(`report-${r.report_id}.json`, item) }, "Download JSON"));
}

// ---------------------------------------------------------------------------------- the slice viewer
function renderForm(fields) {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
  return form;
}

function resetViewer(hint) {
  viewer.seq += 1;  // answers still on their way are dropped
  if (viewer.url) URL.revokeObjectURL(viewer.url);
  Object.assign(viewer, { slices: 0, presets: [], window: "", slice: 0, url: "" });
  $("med-slices").hidden = true;
  $("med-slice").removeAttribute("src");
  $("med-slices-hint").hidden = false;
  $("med-slices-hint").textContent = hint;
}

/** Ask the server what the files hold (slice count, presets), then show the middle slice. */
async function loadSlices() {
  resetViewer("Rendering the slices on this machine…");
  const seq = viewer.seq;
  try {
    const info = await (await api("/v1/medical/render", { method: "POST", body: renderForm({ info: true }) })).json();
    if (seq !== viewer.seq) return;
    Object.assign(viewer, { slices: info.slices, presets: info.presets, window: info.window, slice: info.slice });
    const slider = $("med-slider");
    slider.max = String(info.slices - 1);
    slider.value = String(info.slice);
    slider.disabled = info.slices < 2;
    $("med-presets").replaceChildren(...info.presets.map((name) => h("button", {
      type: "button", "data-window": name, "aria-pressed": "false", onclick: () => showWindow(name), text: presetLabel(name) })));
    $("med-slices").hidden = false;
    $("med-slices-hint").hidden = true;
    await draw();
  } catch (err) {
    if (seq === viewer.seq) resetViewer(err.status === 400 ? `No slices to show: ${err.message.replace(/^400: /, "")}` : `Slices: ${err.message}`);
  }
}

const presetLabel = (name) => (name === "default" ? "file's own window" : name.replace("-", " "));

function showSlice(index) {
  viewer.slice = index;
  return draw();
}

function showWindow(name) {
  viewer.window = name;
  return draw();
}

/** Fetch the current slice through the current window; a newer request wins over an older answer. */
async function draw() {
  const seq = ++viewer.seq;
  const { slice, window } = viewer;
  const label = `Slice ${slice + 1} of ${viewer.slices}`;
  $("med-slice-label").textContent = label;
  $("med-slider").setAttribute("aria-valuetext", label);
  for (const b of $("med-presets").querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.window === window));
  $("med-window").textContent = `Window: ${presetLabel(window)}`;
  try {
    const blob = await (await api("/v1/medical/render", { method: "POST", body: renderForm({ window, slice }) })).blob();
    if (seq !== viewer.seq) return;
    if (viewer.url) URL.revokeObjectURL(viewer.url);
    viewer.url = URL.createObjectURL(blob);
    const img = $("med-slice");
    img.src = viewer.url;
    img.alt = `${label}, ${presetLabel(window)} window`;
    img.dataset.slice = String(slice);
    img.dataset.window = window;
  } catch (err) {
    if (seq === viewer.seq) $("med-window").textContent = `Window: ${presetLabel(window)} (not rendered: ${err.message})`;
  }
}
