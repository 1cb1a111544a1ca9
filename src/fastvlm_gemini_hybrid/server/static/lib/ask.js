// Asking: the server through /v1/chat/completions (streamed, earlier turns with their pictures as
// history), or FastVLM in this browser (browser-infer.js). Both resolve to one "answer" object that
// explain.js renders. /v1/route, asked with the same input, says why and what the privacy gate found.
import { api, dataURI, readSSE } from "./api.js";
import { prefs, status } from "./status.js";

/** One user or assistant message in the chat API's shape; pictures and video as data: URIs. */
export async function chatMessage(role, text, files = []) {
  if (role !== "user" || !files.length) return { role, content: text };
  const parts = [{ type: "text", text }];
  for (const f of files) parts.push({ type: "image_url", image_url: { url: await dataURI(f.blob || f) } });
  return { role, content: parts };
}

/** Stream an answer from the server. `model`: "hybrid" or a backend; `onPiece(text)` per piece. */
export async function askServer(messages, { model = "hybrid", sensitive = false, onPiece } = {}) {
  const body = { model, messages, stream: true, stream_options: { include_usage: true }, max_tokens: prefs.maxTokens };
  if (prefs.mode) body.mode = prefs.mode;
  if (prefs.domain) body.domain = prefs.domain;
  if (sensitive) body.sensitive = true;
  const t0 = performance.now();
  const resp = await api("/v1/chat/completions", { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" } });
  let text = "";
  let info = null;
  let usage = null;
  let firstMs = null;
  await readSSE(resp, (ev) => {
    if (ev === "[DONE]") return;
    if (ev.usage) usage = ev.usage;
    if (ev.x_hybrid) info = ev.x_hybrid;
    const piece = ev.choices?.[0]?.delta?.content;
    if (piece) {
      firstMs ??= performance.now() - t0;
      text += piece;
      onPiece?.(piece, text);
    }
  });
  if (!info) throw new Error("the answer ended before the server said who answered");
  return { path: "server", kind: status.kindOf(info.backend), text: text.trimEnd(), backend: info.backend, model: info.model,
    route: info.route, fallbacks: info.fallbacks, cached: info.cached, confidence: info.confidence, cost: info.cost_usd,
    serverMs: info.latency_ms, firstMs, totalMs: performance.now() - t0, tokens: usage ? usage.completion_tokens : null };
}

/** FastVLM in this browser on one picture. `engine`: auto, wasm or webgpu. Throws when no device worked. */
export async function askBrowser(image, text, engine, onPiece) {
  if (!image) throw new Error("in-browser inference takes one image");
  const { runInBrowser } = await import("/ui/browser-infer.js");
  const t0 = performance.now();
  const out = await runInBrowser(status.browserModels, image, text, (piece) => onPiece?.(piece), engine, prefs.maxTokens);
  return { path: `browser-${out.device}`, kind: "browser", text: out.text, model: out.model, device: out.device,
    loadMs: out.loadMs, reused: out.reused, firstMs: out.firstTokenMs, generateMs: out.generateMs, tokens: out.tokens,
    tokensPerS: out.tokensPerS, skipped: out.skipped, totalMs: performance.now() - t0 };
}

/** /v1/route for the same input: the decision with its rules and the privacy findings (boxes). */
export async function routeCheck(text, files, { model = "hybrid", sensitive = false } = {}) {
  const form = new FormData();
  for (const f of files) form.append("file", f.blob || f, f.name || "picture");
  form.append("prompt", text);
  if (prefs.mode) form.append("mode", prefs.mode);
  if (prefs.domain) form.append("domain", prefs.domain);
  if (model && model !== "hybrid") form.append("model", model);
  if (sensitive) form.append("sensitive", "true");
  return (await api("/v1/route", { method: "POST", body: form })).json();
}
