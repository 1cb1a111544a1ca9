// Conversation history in this browser's IndexedDB: one record per conversation, pictures and video
// kept as Blobs. Nothing here is sent anywhere; "Forget" deletes it. The chat view decides what may be
// stored (a sensitive conversation only when the user ticked "keep").
const DB = "fastvlm-hybrid";
const STORE = "conversations";
let opening = null;

function open() {
  opening ??= new Promise((ok, fail) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id" });
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  });
  return opening;
}

async function run(mode, fn) {
  const db = await open();
  return new Promise((ok, fail) => {
    const tx = db.transaction(STORE, mode);
    const req = fn(tx.objectStore(STORE));
    tx.oncomplete = () => ok(req?.result);
    tx.onerror = () => fail(tx.error);
    tx.onabort = () => fail(tx.error);
  });
}

export const listConversations = async () =>
  ((await run("readonly", (s) => s.getAll())) || []).sort((a, b) => b.updated - a.updated);
export const getConversation = (id) => run("readonly", (s) => s.get(id));
export const saveConversation = (conv) => run("readwrite", (s) => s.put(conv));
export const deleteConversation = (id) => run("readwrite", (s) => s.delete(id));
export const forgetAll = () => run("readwrite", (s) => s.clear());
