// The web UI: upload or camera -> /v1/analyze (streamed), or in-browser inference when chosen.
// Everything is fetched from this server; the page's CSP forbids any other origin.
const $ = (id) => document.getElementById(id);
const state = { files: [], latencies: [], started: performance.now(), count: 0, timer: null, stream: null };

function headers() {
  const key = $("apikey").value || localStorage.getItem("fastvlm-hybrid-key") || "";
  if ($("apikey").value) localStorage.setItem("fastvlm-hybrid-key", key);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function setFiles(list) {
  state.files = Array.from(list).filter((f) => f.type.startsWith("image/") || f.type.startsWith("video/") || !f.type);
  const box = $("previews");
  box.replaceChildren();
  for (const f of state.files) {
    const el = document.createElement(f.type.startsWith("video/") ? "video" : "img");
    el.src = URL.createObjectURL(f);
    el.title = f.name;
    box.append(el);
  }
}

function recordLatency(ms, path) {
  state.count += 1;
  state.latencies.push(ms);
  if (state.latencies.length > 200) state.latencies.shift();
  const sorted = [...state.latencies].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  $("m-count").textContent = String(state.count);
  $("m-rate").textContent = (state.count / ((performance.now() - state.started) / 60000)).toFixed(1);
  $("m-p50").textContent = `${q(0.5).toFixed(0)} ms`;
  $("m-p95").textContent = `${q(0.95).toFixed(0)} ms`;
  $("m-path").textContent = path;
}

function showRoute(result) {
  const route = result.route || {};
  const rules = (route.rules || []).map((r) => `${r.name}: ${r.reason}`).join("; ") || "default order";
  $("route").textContent = `answered by ${result.backend} (${result.model}) · mode ${route.mode} · ` +
    `backends allowed: ${(route.backends || []).join(" → ")} · why: ${rules}` + (result.cached ? " · cached" : "");
}

async function refreshStatus() {
  try {
    const resp = await fetch("/readyz", { headers: headers() });
    const info = await resp.json();
    const parts = Object.entries(info.backends || {}).map(
      ([name, b]) => `${name} (${b.kind}): ${b.ready ? "ready" : "not ready"}${b.detail ? ` – ${b.detail}` : ""}`);
    if ((info.browser_models || []).length) parts.push(`browser models: ${info.browser_models.join(", ")}`);
    $("status").textContent = parts.join(" · ") || "no backends configured";
    state.browserModels = info.browser_models || [];
  } catch (err) {
    $("status").textContent = `server unreachable: ${err}`;
  }
}

function form(files) {
  const body = new FormData();
  for (const f of files) body.append("file", f, f.name || "capture.jpg");
  body.append("prompt", $("prompt").value);
  if ($("mode").value) body.append("mode", $("mode").value);
  if ($("domain").value) body.append("domain", $("domain").value);
  if ($("sensitive").checked) body.append("sensitive", "true");
  body.append("stream", "true");
  return body;
}

async function askServer(files) {
  const t0 = performance.now();
  const resp = await fetch("/v1/analyze", { method: "POST", body: form(files), headers: headers() });
  if (!resp.ok || !resp.headers.get("content-type")?.startsWith("text/event-stream")) {
    const err = await resp.json().catch(() => ({ error: { message: resp.statusText } }));
    throw new Error(`${resp.status}: ${err.error?.message || "request failed"}`);
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let firstMs = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const line = block.split("\n").find((l) => l.startsWith("data: "));
      if (!line) continue;
      const event = JSON.parse(line.slice(6));
      if (event.type === "delta") {
        firstMs ??= performance.now() - t0;
        $("answer").textContent += event.text;
      } else if (event.type === "result") {
        $("answer").textContent = event.response;
        showRoute(event);
        const total = performance.now() - t0;
        $("timing").textContent = `path: server · first piece ${(firstMs ?? total).toFixed(0)} ms · total ${total.toFixed(0)} ms · server ${event.latency_ms.toFixed(0)} ms`;
        recordLatency(total, "server");
      } else if (event.type === "error") {
        throw new Error(event.error.message);
      }
    }
  }
}

function ms(value) {
  return `${value.toFixed(0)} ms`;
}

async function askBrowser(files, engine) {
  const image = files.find((f) => (f.type || "image/").startsWith("image/"));
  if (!image) throw new Error("in-browser inference takes one image");
  const { runInBrowser } = await import("/ui/browser-infer.js");
  const out = await runInBrowser(state.browserModels || [], image, $("prompt").value, (piece) => {
    $("answer").textContent += piece;
  }, engine, Math.max(1, Number($("max-tokens").value) || 64));
  $("answer").textContent = out.text;
  $("route").textContent = `answered in this browser by ${out.model} on ${out.device} · nothing left this machine`;
  const rate = out.tokensPerS ? ` (${out.tokensPerS.toFixed(1)} tokens/s)` : "";
  $("timing").textContent = `path: browser-${out.device} · load ${out.reused ? "0 ms (reused)" : ms(out.loadMs)} · ` +
    `first token ${ms(out.firstTokenMs)} · generate ${ms(out.generateMs)} · ${out.tokens} tokens${rate}`;
  $("fallback").textContent = out.skipped.map((s) => `${s.device} skipped: ${s.error}`).join(" · ");
  recordLatency(out.generateMs, `browser-${out.device}`);
}

async function ask(files = state.files) {
  for (const id of ["answer", "route", "timing", "fallback", "error"]) $(id).textContent = "";
  const engine = $("engine").value;
  try {
    if (engine !== "server") {
      try {
        await askBrowser(files, engine);
        return;
      } catch (err) {
        $("fallback").textContent = `${err.message}; asked the server instead`;
        $("answer").textContent = "";
      }
    }
    await askServer(files);
  } catch (err) {
    $("error").textContent = err.message;
  }
}

async function showWebGPU() {
  const { detectWebGPU } = await import("/ui/browser-infer.js");
  const gpu = await detectWebGPU();
  $("webgpu").textContent = gpu.available ? `WebGPU: available (${gpu.reason})` : `WebGPU: unavailable – ${gpu.reason}; in-browser runs use WASM`;
  $("webgpu").dataset.available = String(gpu.available);
}

async function captureFrame() {
  const video = $("cam");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const blob = await new Promise((ok) => canvas.toBlob(ok, "image/jpeg", 0.85));
  return new File([blob], "camera.jpg", { type: "image/jpeg" });
}

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) throw new Error("this browser has no camera access");
  state.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  const video = $("cam");
  video.srcObject = state.stream;
  video.hidden = false;
  await video.play();
}

function wire() {
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); setFiles(e.dataTransfer.files); ask(); });
  $("files").addEventListener("change", (e) => setFiles(e.target.files));
  $("ask").addEventListener("click", async () => {
    if (state.stream && !state.files.length) return ask([await captureFrame()]);
    return ask();
  });
  $("camera").addEventListener("click", () => startCamera().catch((err) => { $("error").textContent = err.message; }));
  $("live").addEventListener("change", () => {
    clearInterval(state.timer);
    if ($("live").checked) {
      state.timer = setInterval(async () => { if (state.stream) await ask([await captureFrame()]); },
        Math.max(1, Number($("every").value)) * 1000);
    }
  });
  $("apikey").value = localStorage.getItem("fastvlm-hybrid-key") || "";
  refreshStatus();
  setInterval(refreshStatus, 15000);
  showWebGPU().catch((err) => { $("webgpu").textContent = `WebGPU: check failed – ${err.message}`; });
}

wire();
window.__hybridUi = { ask, setFiles };
