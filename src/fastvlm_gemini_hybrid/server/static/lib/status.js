// What the server said last (/readyz, /v1/models) and the page-wide options, shared by every view.
import { $ } from "./dom.js";

export const status = {
  ready: null,          // /readyz's body, or null before the first answer
  browserModels: [],    // ONNX bundles the server offers for in-browser inference
  models: [{ id: "hybrid", kind: "router" }],  // hybrid and each backend: {id, kind, model}
  kindOf(backend) {
    return this.models.find((m) => m.id === backend)?.kind || this.ready?.backends?.[backend]?.kind || "server";
  },
};

/** The options in the Settings dialog (routing mode, domain, max tokens), read when a request is made. */
export const prefs = {
  get mode() { return $("mode").value; },
  get domain() { return $("domain").value; },
  get maxTokens() { return Math.max(1, Number($("max-tokens").value) || 256); },
};

/** The model picker's choices: the router, each backend the server has, and this browser. */
export function modelOptions(select, keep = select.value) {
  const opts = status.models.map((m) => [m.id, m.id === "hybrid" ? "hybrid: the router decides" : `${m.id} (${m.kind})`]);
  const note = status.browserModels.length ? "" : " (no model bundle on the server)";
  opts.push(["browser:auto", `this browser: WebGPU, else WASM${note}`], ["browser:wasm", `this browser: WASM only${note}`],
    ["browser:webgpu", `this browser: WebGPU only${note}`]);
  const sig = JSON.stringify(opts);
  if (select.dataset.sig === sig) return;  // unchanged: leave an open picker alone
  select.dataset.sig = sig;
  select.replaceChildren(...opts.map(([value, label]) => new Option(label, value)));
  if (opts.some(([v]) => v === keep)) select.value = keep;
}
