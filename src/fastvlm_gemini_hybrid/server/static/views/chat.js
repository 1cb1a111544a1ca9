// The conversation view: messages with pictures and video, answers streamed as they come, follow-up
// questions with the earlier turns (and their pictures) as history, a model picker, and history kept
// in this browser. A sensitive conversation is never stored unless "keep" is ticked.
import { askBrowser, askServer, chatMessage, routeCheck } from "../lib/ask.js";
import { $, dropTarget, h } from "../lib/dom.js";
import { badgeText, boxedPicture, explanation, showCheck } from "../lib/explain.js";
import { modelOptions } from "../lib/status.js";
import * as store from "../lib/store.js";

let conv;
let pending = [];
let seq = 0;

const newConversation = () => ({ id: crypto.randomUUID(), title: "", created: Date.now(), updated: Date.now(), sensitive: false, turns: [] });
const urlOf = (f) => (f.url ??= URL.createObjectURL(f.blob));
const kindOf = (f) => (f.type.startsWith("video/") ? "video" : "image");
const picture = (f) => ({ ...f, url: urlOf(f), kind: kindOf(f) });
/** The pictures an answer was asked about, from their places ({turn, file}) in the conversation. */
const picturesAt = (c, refs = []) => refs.map((r) => picture(c.turns[r.turn].files[r.file]));

export function mount(root) {
  root.append(h("div", { class: "chat" },
    h("aside", { class: "history", "aria-labelledby": "history-title" },
      h("div", { class: "history-head" }, h("h2", { id: "history-title", text: "Conversations" }),
        h("button", { id: "new-chat", type: "button", onclick: () => load(newConversation()) }, "New")),
      h("ul", { id: "conversations" }),
      h("p", { class: "hint", text: "Kept only in this browser. Sensitive conversations are not kept unless you tick \u201ckeep\u201d." }),
      h("button", { id: "forget", type: "button", class: "danger", onclick: forget }, "Forget all history")),
    h("section", { class: "thread", "aria-label": "Conversation" },
      h("div", { id: "empty", class: "empty" },
        h("h2", { text: "Ask about a picture or a video" }),
        h("p", { text: "Drop files below, or pick them. Ask follow-up questions: the earlier turns and their pictures go along. Each answer's badge tells where it ran and why." })),
      h("ol", { id: "messages", "aria-live": "polite", "aria-label": "Messages" }),
      h("p", { id: "not-kept", class: "notice", hidden: true }),
      composer())));
  modelOptions($("model"));
  load(newConversation());
  refreshList();
  return { refresh: () => modelOptions($("model")) };
}

function composer() {
  const form = h("form", { id: "composer", class: "composer", onsubmit: (e) => { e.preventDefault(); send(); } },
    h("div", { id: "drop", class: "drop" },
      h("div", { id: "previews", class: "tray", "aria-label": "Attached files" }),
      h("label", { for: "prompt", class: "sr-only" }, "Message"),
      h("textarea", { id: "prompt", rows: 2, placeholder: "Ask about the picture\u2026 (Enter sends, Shift+Enter for a new line)",
        onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); } } })),
    h("div", { class: "row" },
      h("label", { class: "button" }, "Add pictures or video",
        h("input", { id: "files", type: "file", accept: "image/*,video/*", multiple: true, class: "sr-only",
          onchange: (e) => { addFiles(e.target.files); e.target.value = ""; } })),
      h("label", {}, "Model ", h("select", { id: "model" })),
      h("label", { class: "check" }, h("input", { id: "sensitive", type: "checkbox" }), " Sensitive (never leaves this machine)"),
      h("label", { class: "check" }, h("input", { id: "keep", type: "checkbox", onchange: persist }), " Keep even if sensitive"),
      h("button", { id: "ask", type: "submit", class: "primary" }, "Send")));
  dropTarget(form.querySelector("#drop"), addFiles);
  return form;
}

function addFiles(list) {
  for (const f of list) {
    if (!/^(image|video)\//.test(f.type || "image/")) continue;
    pending.push({ name: f.name || "capture.jpg", type: f.type || "image/jpeg", blob: f });
  }
  renderTray();
}

function renderTray() {
  $("previews").replaceChildren(...pending.map((f, i) => h("div", { class: "chip" }, thumb(f),
    h("button", { type: "button", class: "remove", "aria-label": `Remove ${f.name}`,
      onclick: () => { pending.splice(i, 1); renderTray(); } }, "\u00d7"))));
}

function thumb(f) {
  const media = kindOf(f) === "video" ? h("video", { src: urlOf(f), muted: true, preload: "metadata" }) : h("img", { src: urlOf(f), alt: "" });
  return h("button", { type: "button", class: "thumb", "aria-label": `Enlarge ${f.name}`, onclick: () => enlarge(f) }, media);
}

/** Show a picture (with privacy boxes when given) or a video large, in the lightbox dialog. */
export function enlarge(f, boxes = []) {
  const dialog = $("lightbox");
  const body = kindOf(f) === "video" ? h("video", { src: urlOf(f), controls: true, autoplay: true })
    : boxes.length ? boxedPicture(urlOf(f), boxes, f.name) : h("img", { src: urlOf(f), alt: f.name });
  dialog.querySelector(".content").replaceChildren(body, h("p", { text: f.name }));
  dialog.showModal();
}

function renderTurn(turn, pictures = []) {
  $("empty").hidden = true;
  if (turn.role === "user") {
    const li = h("li", { class: "msg user" }, h("div", { class: "bubble" },
      h("p", { class: "text", text: turn.text }), turn.files.length ? h("div", { class: "thumbs" }, turn.files.map(thumb)) : null));
    $("messages").append(li);
    return null;
  }
  const id = `why-${++seq}`;
  const text = h("div", { class: "text", text: turn.text });
  const badge = h("button", { type: "button", class: "badge", "aria-expanded": "false", "aria-controls": id, hidden: true,
    onclick: () => { const open = badge.getAttribute("aria-expanded") !== "true"; badge.setAttribute("aria-expanded", String(open)); why.hidden = !open; } });
  const why = h("div", { id, class: "why-wrap", hidden: true });
  const error = h("p", { class: "error", role: "alert" });
  const li = h("li", { class: "msg assistant" }, h("div", { class: "bubble" }, text, h("div", { class: "meta" }, badge), why, error));
  if (!turn.text && !turn.answer && !turn.error) li.classList.add("typing");
  $("messages").append(li);
  const view = {
    li, text,
    piece: (_p, all) => { li.classList.remove("typing"); text.textContent = all; li.scrollIntoView({ block: "end" }); },
    answered(answer, pictures) {
      li.classList.remove("typing");
      text.textContent = answer.text;
      badge.textContent = badgeText(answer);
      badge.dataset.kind = answer.kind;
      badge.hidden = false;
      view.panel = explanation(answer);
      why.replaceChildren(view.panel);
      view.pictures = pictures;
    },
    checked(check) { if (view.panel) showCheck(view.panel, check, view.pictures || [], (pic, boxes) => enlarge(pic, boxes)); },
    failed(message, note = "") {
      li.classList.remove("typing");
      error.textContent = message;
      if (note) why.replaceChildren(h("p", { class: "fallback", text: note }));
    },
  };
  if (turn.answer) { view.answered(turn.answer, pictures); if (turn.check) view.checked(turn.check); }
  if (turn.error) view.failed(turn.error);
  return view;
}

/** The earlier exchanges that were answered (failed ones are left out of the history sent). */
function answeredTurns() {
  const out = [];
  for (let i = 0; i + 1 < conv.turns.length; i += 2) {
    if (conv.turns[i + 1].answer) out.push(conv.turns[i], conv.turns[i + 1]);
  }
  return out;
}

async function send() {
  const files = pending;
  const text = $("prompt").value.trim() || (files.length ? "Describe this." : "");
  if (!text) { $("prompt").focus(); return; }
  const earlier = answeredTurns();
  const user = { role: "user", text, files };
  const asst = { role: "assistant", text: "" };
  conv.turns.push(user, asst);
  conv.title ||= text.slice(0, 60);
  pending = [];
  renderTray();
  $("prompt").value = "";
  renderTurn(user);
  const view = renderTurn(asst);
  const choice = $("model").value || "hybrid";
  const sensitive = $("sensitive").checked;
  $("ask").disabled = true;
  try {
    let note = "";
    if (choice.startsWith("browser:")) {
      const image = [...files, ...earlier.flatMap((t) => t.files || []).reverse()].find((f) => kindOf(f) === "image");
      try {
        asst.answer = await askBrowser(image?.blob, text, choice.slice(8), view.piece);
        asst.sensitive = sensitive;  // nothing went to the server, so only the user's own tick says so
        view.answered(asst.answer, []);
      } catch (err) {
        note = `${err.message}; asked the server instead`;
        view.text.textContent = "";
      }
    }
    if (!asst.answer) await viaServer(earlier, user, asst, view, choice.startsWith("browser:") ? "hybrid" : choice, sensitive, note);
    asst.text = asst.answer.text;
  } catch (err) {
    asst.error = err.message;
    asst.sensitive = true;  // unknown: treated as sensitive (not stored unless "keep")
    view.failed(err.message);
  } finally {
    $("ask").disabled = false;
  }
  conv.updated = Date.now();
  conv.sensitive ||= Boolean(asst.sensitive) || sensitive;
  await persist();
}

async function viaServer(earlier, user, asst, view, model, sensitive, note) {
  const turns = [...earlier, user];
  asst.pictures = turns.flatMap((t) => (t.files || []).map((_f, file) => ({ turn: conv.turns.indexOf(t), file })));
  const pictures = picturesAt(conv, asst.pictures);
  const messages = await Promise.all(turns.map((t) => chatMessage(t.role, t.text, t.files)));
  // The same input to /v1/route, alongside: why, and what the privacy gate sees in every picture.
  const checking = routeCheck(user.text, pictures, { model, sensitive }).catch((err) => err);
  asst.answer = await askServer(messages, { model, sensitive, onPiece: view.piece });
  asst.answer.fallbackNote = note;
  view.answered(asst.answer, pictures);
  const check = await checking;
  view.checked(check);
  if (!(check instanceof Error)) asst.check = check;
  // Sensitive when the route says so, when the answer's own route did, or when the check failed (fail closed).
  asst.sensitive = check instanceof Error || check.sensitive || Boolean(asst.answer.route?.sensitive);
}

async function persist() {
  const keep = $("keep").checked;
  conv.keep = keep;
  const notice = $("not-kept");
  const done = conv.turns.length && conv.turns.every((t) => t.role === "user" || t.answer || t.error);
  if (!done) return;
  try {
    if (conv.sensitive && !keep) {
      await store.deleteConversation(conv.id);
      notice.textContent = "Not kept in history: this conversation is sensitive. Tick \u201ckeep\u201d to keep it in this browser.";
      notice.hidden = false;
    } else {
      notice.hidden = true;
      await store.saveConversation(storable(conv));
    }
  } catch (err) {
    notice.textContent = `History unavailable in this browser: ${err.message}`;
    notice.hidden = false;
  }
  refreshList();
}

/** The conversation as stored: Blobs for files, the answer and the route, no object URLs. */
function storable(c) {
  const turns = c.turns.map((t) => (t.role === "user"
    ? { role: "user", text: t.text, files: t.files.map(({ name, type, blob }) => ({ name, type, blob })) }
    : { role: "assistant", text: t.text, answer: t.answer, check: t.check, pictures: t.pictures, error: t.error, sensitive: t.sensitive }));
  return { id: c.id, title: c.title, created: c.created, updated: c.updated, sensitive: c.sensitive, keep: c.keep, turns };
}

function load(c) {
  conv = c;
  $("messages").replaceChildren();
  $("empty").hidden = c.turns.length > 0;
  $("not-kept").hidden = true;
  $("keep").checked = Boolean(c.keep);
  for (const t of c.turns) renderTurn(t, picturesAt(c, t.pictures));
  for (const li of document.querySelectorAll("#conversations li")) li.classList.toggle("current", li.dataset.id === c.id);
}

async function refreshList() {
  let all = [];
  try { all = await store.listConversations(); } catch { /* private mode: no IndexedDB */ }
  $("conversations").replaceChildren(...all.map((c) => h("li", { "data-id": c.id, class: c.id === conv.id ? "current" : "" },
    h("button", { type: "button", class: "plain open", onclick: async () => load(await store.getConversation(c.id)) },
      h("span", { text: c.title || "untitled" }), h("small", { text: new Date(c.updated).toLocaleString() })),
    h("button", { type: "button", class: "plain remove", "aria-label": `Forget \u201c${c.title}\u201d`,
      onclick: async () => { await store.deleteConversation(c.id); if (c.id === conv.id) load(newConversation()); refreshList(); } }, "\u00d7"))));
  $("forget").disabled = all.length === 0;
}

async function forget() {
  await store.forgetAll();
  load(newConversation());
  refreshList();
}
