// Live camera mode, after Apple's FastVLM WebGPU demo: the camera with its caption streaming over it,
// one frame at a time (every N seconds or as fast as answers come), in this browser (WebGPU, else
// WASM) or on the server, with the path and measured latency. Phones get the rear camera, portrait.
import { askBrowser, askServer, chatMessage } from "../lib/ask.js";
import { $, h, ms } from "../lib/dom.js";
import { badgeText } from "../lib/explain.js";
import { modelOptions } from "../lib/status.js";

let stream = null;
let running = false;
const latencies = [];

const stat = (id, label) => [h("dt", { text: label }), h("dd", { id, text: "–" })];

export function mount(root) {
  root.append(h("div", { class: "camera" },
    h("div", { class: "stage", id: "stage" },
      h("video", { id: "cam", playsinline: true, muted: true, "aria-label": "Camera picture" }),
      h("div", { id: "cam-off", class: "off" }, h("p", { text: "The camera is off" })),
      h("span", { id: "cam-hud", class: "hud", hidden: true }),
      h("p", { id: "caption", class: "caption", "aria-live": "polite" })),
    h("div", { class: "controls card" },
      h("h2", { text: "Live captions" }),
      h("button", { id: "camera", type: "button", class: "primary", onclick: toggleCamera }, "Start camera"),
      h("label", {}, "Ask ", h("input", { id: "cam-prompt", type: "text", value: "Describe what you see in one sentence." })),
      h("label", {}, "Run on ", h("select", { id: "cam-model" })),
      h("label", {}, "Caption ", h("select", { id: "every" }, new Option("as fast as it can", "0"),
        new Option("every second", "1"), new Option("every 2 seconds", "2"), new Option("every 5 seconds", "5"))),
      h("label", { class: "check" }, h("input", { id: "live", type: "checkbox", onchange: toggleLive }), " Live captions"),
      h("button", { id: "cam-once", type: "button", onclick: () => caption().catch(showError) }, "Caption this frame"),
      h("dl", { class: "stats" }, stat("cam-path", "path"), stat("cam-latency", "last answer"), stat("cam-first", "first words"),
        stat("cam-p50", "median"), stat("cam-count", "frames"), stat("cam-route", "answered by")),
      h("p", { id: "cam-error", class: "error", role: "alert" }))));
  $("cam-count").textContent = "0";
  $("cam").addEventListener("loadedmetadata", () => {
    const v = $("cam");
    if (v.videoWidth) $("stage").style.aspectRatio = `${v.videoWidth} / ${v.videoHeight}`;
  });
  modelOptions($("cam-model"));
  return { refresh: () => modelOptions($("cam-model")), hide: stop };
}

function showError(err) { $("cam-error").textContent = err.message; }

async function toggleCamera() {
  if (stream) { stop(); return; }
  $("cam-error").textContent = "";
  try {
    if (!navigator.mediaDevices?.getUserMedia) throw new Error("this browser has no camera access (it needs https or 127.0.0.1)");
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    $("cam").srcObject = stream;
    await $("cam").play();
    $("cam-off").hidden = true;
    $("camera").textContent = "Stop camera";
  } catch (err) { stream = null; showError(err); }
}

function stop() {
  running = false;
  $("live").checked = false;
  for (const track of stream?.getTracks() || []) track.stop();
  stream = null;
  $("cam").srcObject = null;
  $("cam-off").hidden = false;
  $("camera").textContent = "Start camera";
}

async function toggleLive() {
  running = $("live").checked;
  if (running && !stream) await toggleCamera();
  while (running && stream) {
    const t0 = performance.now();
    try { await caption(); } catch (err) { showError(err); }
    const wait = Number($("every").value) * 1000 - (performance.now() - t0);
    await new Promise((ok) => setTimeout(ok, Math.max(wait, 50)));
  }
}

async function frame() {
  const video = $("cam");
  if (!stream || video.readyState < 2) throw new Error("start the camera first");
  const canvas = h("canvas", { width: video.videoWidth, height: video.videoHeight });
  canvas.getContext("2d").drawImage(video, 0, 0);
  const blob = await new Promise((ok) => canvas.toBlob(ok, "image/jpeg", 0.85));
  return new File([blob], "camera.jpg", { type: "image/jpeg" });
}

/** Caption one frame; the caption is replaced when the new answer's first words arrive. */
async function caption() {
  const image = await frame();
  const prompt = $("cam-prompt").value.trim() || "Describe what you see.";
  const choice = $("cam-model").value || "hybrid";
  const onPiece = (_piece, all) => { $("caption").textContent = all; };
  let answer = null;
  if (choice.startsWith("browser:")) {
    let text = "";
    try {
      answer = await askBrowser(image, prompt, choice.slice(8), (p) => { text += p; $("caption").textContent = text; });
    } catch (err) { $("cam-error").textContent = `${err.message}; asked the server instead`; }
  }
  answer ??= await askServer([await chatMessage("user", prompt, [image])],
    { model: choice.startsWith("browser:") ? "hybrid" : choice, onPiece });
  $("caption").textContent = answer.text;
  latencies.push(answer.totalMs);
  if (latencies.length > 50) latencies.shift();
  const sorted = [...latencies].sort((a, b) => a - b);
  $("cam-path").textContent = answer.path;
  $("cam-latency").textContent = ms(answer.totalMs);
  $("cam-first").textContent = answer.firstMs != null ? ms(answer.firstMs) : "–";
  $("cam-p50").textContent = ms(sorted[Math.floor(sorted.length / 2)]);
  $("cam-count").textContent = String(Number($("cam-count").textContent) + 1);
  $("cam-route").textContent = answer.kind === "browser" ? `this browser (${answer.device}), ${answer.model}` : `${answer.backend} · ${badgeText(answer)}`;
  $("cam-hud").textContent = `${answer.path} · ${ms(answer.totalMs)}`;
  $("cam-hud").hidden = false;
}
