// The medical view: DICOM files of one study (or one picture and its modality) to /v1/agents/medical, and
// the de-identified draft report: severity (indeterminate shown as such), findings, impression, the
// disclaimer, proof that it stayed on this machine, the audit id, and the JSON to download. The page
// keeps nothing: no history, no storage.
import { api, getJSON } from "../lib/api.js";
import { $, downloadJSON, dropTarget, h } from "../lib/dom.js";
import { status } from "../lib/status.js";

let files = [];

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
    h("section", { id: "med-report", class: "card report", "aria-label": "Report", "aria-live": "polite" },
      h("p", { class: "hint", text: "The report appears here." }))));
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
}

async function run() {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  if ($("med-modality").value) form.append("options", JSON.stringify({ modality: $("med-modality").value }));
  $("med-error").textContent = "";
  $("med-status").textContent = "Reading the study on this machine…";
  $("med-run").disabled = true;
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
    h("p", { class: "hint", text: `Rendered slices: not shown. Neither the agent's output nor an endpoint offers rendered images; the model read ${(r.panels || []).join(", ") || "the study"}.` }),
    notes.length ? h("p", { class: "hint", text: notes.join(" · ") }) : null,
    h("p", { class: "disclaimer", text: r.disclaimer }),
    h("button", { type: "button", class: "download", onclick: () => downloadJSON(`report-${r.report_id}.json`, item) }, "Download JSON"));
}
