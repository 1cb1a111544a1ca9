// In-browser FastVLM with transformers.js: WebGPU when the browser has an adapter, else WASM; the
// caller (app.js) falls back to the server API when both fail. Every byte comes from this server:
// transformers.js and ONNX Runtime's wasm files from /ui/vendor/, the ONNX bundle from /models/<name>/
// (allowRemoteModels is off, so nothing is ever asked of the Hugging Face hub or a CDN).
const VENDOR = "/ui/vendor/";
let tjsPromise = null;
let cached = null;
let gpuProbe = null;

/** Whether WebGPU can run here, and why not: headless or GPU-less browsers expose no adapter. */
export function detectWebGPU() {
  gpuProbe ??= (async () => {
    if (!globalThis.isSecureContext) return { available: false, reason: "page is not a secure context" };
    if (!navigator.gpu) return { available: false, reason: "navigator.gpu is missing (WebGPU disabled in this browser)" };
    try {
      const adapter = await navigator.gpu.requestAdapter();
      if (!adapter) return { available: false, reason: "no WebGPU adapter (no usable GPU)" };
      const info = adapter.info || {};
      const name = [info.vendor, info.architecture || info.device].filter(Boolean).join(" ") || "adapter";
      return { available: true, reason: name, fp16: adapter.features.has("shader-f16") };
    } catch (err) {
      return { available: false, reason: `requestAdapter failed: ${err.message || err}` };
    }
  })();
  return gpuProbe;
}

async function transformers() {
  tjsPromise ??= import(`${VENDOR}transformers.min.js`).then((tjs) => {
    tjs.env.allowRemoteModels = false;
    tjs.env.allowLocalModels = true;
    tjs.env.localModelPath = "/models/";
    tjs.env.useBrowserCache = false;
    tjs.env.backends.onnx.wasm.wasmPaths = VENDOR;
    // Threads need cross-origin isolation (SharedArrayBuffer); without it ORT would warn and use one.
    if (!globalThis.crossOriginIsolated) tjs.env.backends.onnx.wasm.numThreads = 1;
    return tjs;
  });
  return tjsPromise;
}

async function load(name, device) {
  const key = `${name}@${device}`;
  if (cached?.key === key) return { ...cached, loadMs: 0, reused: true };
  if (cached) await cached.model.dispose?.().catch(() => {});
  cached = null;
  const t0 = performance.now();
  const tjs = await transformers();
  const processor = await tjs.AutoProcessor.from_pretrained(name);
  // dtype per session comes from the bundle's config.json ("transformers.js_config").
  const model = await tjs.AutoModelForImageTextToText.from_pretrained(name, { device });
  cached = { key, tjs, processor, model, device, name };
  return { ...cached, loadMs: performance.now() - t0, reused: false };
}

async function generate(m, file, prompt, onPiece, maxNewTokens) {
  const { tjs, processor, model } = m;
  const image = await tjs.RawImage.fromBlob(file);
  const text = processor.apply_chat_template([{ role: "user", content: `<image>${prompt}` }], { add_generation_prompt: true });
  const inputs = await processor(image, text, { add_special_tokens: false });
  const t0 = performance.now();
  let firstMs = null;
  const streamer = new tjs.TextStreamer(processor.tokenizer, {
    skip_prompt: true,
    skip_special_tokens: true,
    callback_function: (piece) => onPiece?.(piece),
    token_callback_function: () => { firstMs ??= performance.now() - t0; },
  });
  const out = await model.generate({ ...inputs, max_new_tokens: maxNewTokens, do_sample: false, streamer });
  const generateMs = performance.now() - t0;
  const promptLen = inputs.input_ids.dims.at(-1);
  const tokens = out.dims.at(-1) - promptLen;
  const answer = processor.batch_decode(out.slice(null, [promptLen, null]), { skip_special_tokens: true })[0];
  return { text: answer, tokens, firstTokenMs: firstMs ?? generateMs, generateMs };
}

/**
 * Answer `prompt` about the image `file` with the first ONNX bundle in `models`.
 * `engine` is "auto" (WebGPU, then WASM), "webgpu" or "wasm". Resolves to
 * { text, model, device, loadMs, firstTokenMs, generateMs, tokens, tokensPerS, webgpu, skipped };
 * `skipped` lists the devices tried first and why they failed. Rejects when no device worked.
 */
export async function runInBrowser(models, file, prompt, onPiece, engine = "auto", maxNewTokens = 64) {
  if (!models.length) throw new Error("no ONNX model bundle on the server (run: fastvlm-hybrid models pull fastvlm-0.5b-onnx)");
  const webgpu = await detectWebGPU();
  let devices = engine === "auto" ? ["webgpu", "wasm"] : [engine];
  const skipped = [];
  if (devices.includes("webgpu") && !webgpu.available) {
    skipped.push({ device: "webgpu", error: `unavailable: ${webgpu.reason}` });
    devices = devices.filter((d) => d !== "webgpu");
  }
  for (const device of devices) {
    try {
      const m = await load(models[0], device);
      const out = await generate(m, file, prompt, onPiece, maxNewTokens);
      const tokensPerS = out.tokens > 1 ? (out.tokens - 1) / ((out.generateMs - out.firstTokenMs) / 1000) : null;
      return { ...out, model: m.name, device, loadMs: m.loadMs, reused: m.reused, tokensPerS, webgpu, skipped };
    } catch (err) {
      skipped.push({ device, error: String(err?.message || err) });
      cached = null;
    }
  }
  const why = skipped.map((s) => `${s.device}: ${s.error}`).join("; ");
  const error = new Error(`in-browser inference failed (${why})`);
  error.skipped = skipped;
  throw error;
}
