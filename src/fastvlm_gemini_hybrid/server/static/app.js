// The page's shell: one view per hash (#/chat, #/camera, #/dashboard, #/medical, #/surveillance), each a
// module under views/ loaded on first visit; the server's readiness as setup help; the Settings dialog.
// Everything is fetched from this server: the page's Content-Security-Policy forbids any other origin.
import { settings } from "./lib/api.js";
import { $, h } from "./lib/dom.js";
import { status } from "./lib/status.js";

const VIEWS = { chat: "Chat", camera: "Live camera", dashboard: "Dashboard", medical: "Medical", surveillance: "Surveillance" };
const mounted = {};
let current = null;

async function route() {
  const name = location.hash.replace(/^#\/?/, "") || "chat";
  const view = name in VIEWS ? name : "chat";
  if (current && current !== view) mounted[current]?.hooks?.hide?.();
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.hash === `#/${view}`) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  document.title = `${VIEWS[view]} · fastvlm-hybrid`;
  for (const el of document.querySelectorAll("#view > .view")) el.hidden = el.dataset.view !== view;
  current = view;
  if (!mounted[view]) {
    const section = h("section", { class: "view", "data-view": view, id: `view-${view}`, "aria-label": VIEWS[view] });
    $("view").append(section);
    mounted[view] = { section };
    const module = await import(`./views/${view}.js`);
    mounted[view].hooks = module.mount(section) || {};
  } else {
    mounted[view].hooks?.show?.();
  }
  document.body.dataset.view = view;
}

// ------------------------------------------------------------------ readiness and setup help
const command = (text) => h("div", { class: "cmd" }, h("code", { text }),
  h("button", { type: "button", class: "plain copy", "aria-label": `Copy: ${text}`,
    onclick: (e) => navigator.clipboard?.writeText(text).then(() => { e.target.textContent = "copied"; }) }, "copy"));

function setupSteps(info) {
  const steps = [];
  for (const [name, b] of Object.entries(info.backends || {})) {
    if (b.ready) continue;
    const detail = b.detail || "not ready";
    if (b.kind === "local" && /not downloaded|models pull/.test(detail)) {
      steps.push(h("li", {}, h("strong", { text: `Local model (${name}): ` }), `${detail.split(";")[0]}. Download it once, then restart the server:`,
        command(`fastvlm-hybrid models pull ${b.model || "fastvlm-0.5b"}`)));
    } else if (b.kind === "cloud" && /API key/i.test(detail)) {
      steps.push(h("li", {}, h("strong", { text: `Cloud (${name}): ` }), "no API key. Set one where the server runs, then restart it:",
        command("export GEMINI_API_KEY=..."), command("fastvlm-hybrid serve")));
    } else {
      steps.push(h("li", {}, h("strong", { text: `${name} (${b.kind}): ` }), detail));
    }
  }
  return steps;
}

function whatWorks(info) {
  const ready = Object.entries(info.backends || {}).filter(([, b]) => b.ready);
  const local = ready.filter(([, b]) => b.kind === "local").map(([n]) => n);
  const cloud = ready.filter(([, b]) => b.kind === "cloud").map(([n]) => n);
  if (local.length && cloud.length) return "Everything is ready.";
  if (local.length) return `Answers come from ${local.join(", ")} on this machine; nothing goes to the cloud.`;
  if (cloud.length) return `Only the cloud (${cloud.join(", ")}) can answer: sensitive requests, which must stay on this machine, will be refused.`;
  if (info.browser_models?.length) return `No server backend can answer yet; pick "this browser" as the model to run ${info.browser_models[0]} here.`;
  return "Nothing can answer yet. In-browser answers need an ONNX bundle: fastvlm-hybrid models pull fastvlm-0.5b-onnx.";
}

function showSetup(info, error) {
  const box = $("setup");
  if (error) {
    box.replaceChildren(h("h2", { id: "setup-title", text: "The server does not answer" }), h("p", { text: String(error) }));
    box.hidden = false;
    return;
  }
  const steps = setupSteps(info);
  box.hidden = steps.length === 0 || box.dataset.dismissed === JSON.stringify(info.backends);
  if (!steps.length) return;
  box.replaceChildren(h("div", { class: "setup-head" }, h("h2", { id: "setup-title", text: "Finish setting up" }),
    h("button", { type: "button", class: "plain", onclick: () => { box.dataset.dismissed = JSON.stringify(info.backends); box.hidden = true; } }, "Hide")),
  h("p", { class: "works", text: whatWorks(info) }), h("ol", {}, steps));
}

async function refreshStatus() {
  try {
    const resp = await fetch("/readyz");
    const info = await resp.json();
    status.ready = info;
    status.browserModels = info.browser_models || [];
    // The picker's models: hybrid and each backend, as /v1/models lists them (read here, from /readyz, which
    // needs no key and is not a /v1 call: a page that answers in the browser asks nothing of the API).
    status.models = [{ id: "hybrid", kind: "router" },
      ...Object.entries(info.backends || {}).map(([id, b]) => ({ id, kind: b.kind, model: b.model }))];
    for (const m of Object.values(mounted)) m.hooks?.refresh?.();
    $("status").replaceChildren(...Object.entries(info.backends || {}).map(([name, b]) =>
      h("span", { class: `pill ${b.ready ? "ok" : "bad"}`, title: b.detail || "" }, `${name} (${b.kind}): ${b.ready ? "ready" : "not ready"}`)));
    if (!Object.keys(info.backends || {}).length) $("status").textContent = "no backends configured";
    showSetup(info);
  } catch (err) {
    $("status").textContent = `server unreachable: ${err.message}`;
    showSetup(null, err.message);
  }
}


async function showWebGPU() {
  const { detectWebGPU } = await import("/ui/browser-infer.js");
  const gpu = await detectWebGPU();
  $("webgpu").textContent = gpu.available ? `WebGPU: available (${gpu.reason})` : "WebGPU: unavailable (in-browser runs use WASM)";
  $("webgpu").title = gpu.reason;
  $("webgpu").dataset.available = String(gpu.available);
}

// ------------------------------------------------------------------ settings
function wireSettings() {
  const saved = JSON.parse(localStorage.getItem("fastvlm-hybrid-prefs") || "{}");
  for (const id of ["mode", "domain", "max-tokens"]) {
    if (saved[id] != null) $(id).value = saved[id];
    $(id).addEventListener("change", () => {
      localStorage.setItem("fastvlm-hybrid-prefs", JSON.stringify({ mode: $("mode").value, domain: $("domain").value, "max-tokens": $("max-tokens").value }));
    });
  }
  $("apikey").value = settings.key;
  $("apikey").addEventListener("change", () => { settings.key = $("apikey").value; });
  $("open-settings").addEventListener("click", () => $("settings").showModal());
  $("lightbox").addEventListener("click", (e) => { if (e.target === $("lightbox")) $("lightbox").close(); });
}

wireSettings();
addEventListener("hashchange", route);
route().then(refreshStatus);
setInterval(refreshStatus, 15000);
showWebGPU().catch((err) => { $("webgpu").textContent = `WebGPU: check failed – ${err.message}`; });
