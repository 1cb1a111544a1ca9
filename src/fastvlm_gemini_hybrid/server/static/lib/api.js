// Talking to this server: the API key header, JSON errors as Error messages, and server-sent events
// read from fetch() (EventSource cannot send an Authorization header).
const KEY = "fastvlm-hybrid-key";

export const settings = {
  get key() { return localStorage.getItem(KEY) || ""; },
  set key(v) { if (v) localStorage.setItem(KEY, v); else localStorage.removeItem(KEY); },
};

export function authHeaders(extra = {}) {
  const key = settings.key;
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** fetch() with the key; a non-2xx answer throws Error("STATUS: message") with `.status` and `.body`. */
export async function api(path, options = {}) {
  const resp = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    const err = new Error(`${resp.status}: ${body.error?.message || resp.statusText || "request failed"}`);
    err.status = resp.status;
    err.body = body;
    throw err;
  }
  return resp;
}

export const getJSON = async (path) => (await api(path)).json();

/** Read an SSE response, calling onEvent(parsedData) per `data:` block ("[DONE]" is passed as a string). */
export async function readSSE(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (!data) continue;
      if (data === "[DONE]") { onEvent("[DONE]"); continue; }
      const event = JSON.parse(data);
      if (event.type === "error" && event.error) {
        const err = new Error(event.error.message);
        err.code = event.error.code;
        throw err;
      }
      onEvent(event);
    }
  }
}

/** A File or Blob as a data: URI (the chat API takes pictures and video that way). */
export function dataURI(blob) {
  return new Promise((ok, fail) => {
    const reader = new FileReader();
    reader.onload = () => ok(reader.result);
    reader.onerror = () => fail(reader.error);
    reader.readAsDataURL(blob);
  });
}
