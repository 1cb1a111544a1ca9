// In-browser FastVLM with transformers.js: WebGPU when the browser has an adapter, else WASM.
// Models and ONNX Runtime's wasm files come from this server only (allowRemoteModels = false).
let cached = null;

async function pickDevice() {
  if (navigator.gpu) {
    try {
      if (await navigator.gpu.requestAdapter()) return "webgpu";
    } catch (_) { /* fall through to wasm */ }
  }
  return "wasm";
}

async function load(models, forced) {
  if (!models.length) throw new Error("no ONNX model bundle on the server (models pull fastvlm-0.5b-onnx)");
  const device = forced || (await pickDevice());
  const key = `${models[0]}@${device}`;
  if (cached?.key === key) return cached;
  const t0 = performance.now();
  const tjs = await import("/ui/vendor/transformers.min.js");
  tjs.env.allowRemoteModels = false;
  tjs.env.allowLocalModels = true;
  tjs.env.localModelPath = "/models/";
  tjs.env.useBrowserCache = false;
  tjs.env.backends.onnx.wasm.wasmPaths = "/ui/vendor/";
  const processor = await tjs.AutoProcessor.from_pretrained(models[0]);
  const model = await tjs.AutoModelForImageTextToText.from_pretrained(models[0], { device, dtype: "fp32" });
  cached = { key, tjs, processor, model, device, name: models[0], loadMs: performance.now() - t0 };
  return cached;
}

export async function runInBrowser(models, file, prompt, onPiece, forced) {
  const m = await load(models, forced);
  const { tjs, processor, model } = m;
  const image = await tjs.RawImage.fromBlob(file);
  const messages = [{ role: "user", content: `<image>${prompt}` }];
  const text = processor.apply_chat_template(messages, { add_generation_prompt: true });
  const inputs = await processor(image, text, { add_special_tokens: false });
  const t0 = performance.now();
  const streamer = new tjs.TextStreamer(processor.tokenizer, { skip_prompt: true, skip_special_tokens: true, callback_function: onPiece });
  const out = await model.generate({ ...inputs, max_new_tokens: 64, do_sample: false, streamer });
  const answer = processor.batch_decode(out.slice(null, [inputs.input_ids.dims.at(-1), null]), { skip_special_tokens: true })[0];
  return { text: answer, model: m.name, device: m.device, loadMs: m.loadMs, generateMs: performance.now() - t0 };
}
