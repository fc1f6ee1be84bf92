// A notes app on orbitstore's HTTP API only (docs/http-api.md): a documents database
// "app-notes" of {_id, text, at}; add and delete notes; the list follows the database's
// changes feed by long-polling, so notes from other tabs and other nodes appear live.
"use strict";

const DB = "app-notes";
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error ? `${data.error.code}: ${data.error.message}` : response.statusText);
  return data;
}

function showError(err) { $("error").textContent = err ? String(err.message || err) : ""; }

async function refresh() {
  const { documents } = await api("GET", `/v1/databases/${DB}/docs?limit=1000`);
  documents.sort((a, b) => (a.at || 0) - (b.at || 0));
  $("notes").replaceChildren(...documents.map((note) => {
    const item = document.createElement("li");
    const text = Object.assign(document.createElement("span"), { textContent: String(note.text) });
    const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "delete" });
    remove.onclick = () => api("DELETE", `/v1/databases/${DB}/docs/${encodeURIComponent(note._id)}`).catch(showError);
    item.append(text, remove);
    return item;
  }));
}

// The changes feed: wait (up to 25 s) for anything after `since`, refresh, repeat.
async function follow() {
  let { last_seq: since } = await api("GET", `/v1/databases/${DB}`);
  await refresh();
  for (;;) {
    try {
      const page = await api("GET", `/v1/databases/${DB}/changes?since=${since || 0}&feed=longpoll&timeout=25&limit=1000`);
      if (page.results.length) await refresh();
      since = page.last_seq;
      showError(null);
    } catch (err) {
      showError(err);
      await new Promise((resolve) => setTimeout(resolve, 2000));  // the node is away: retry
    }
  }
}

$("add").onsubmit = async (event) => {
  event.preventDefault();
  const id = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  try {
    await api("POST", `/v1/databases/${DB}/docs`, { _id: id, text: $("text").value, at: Date.now() });
    $("text").value = "";
    showError(null);
  } catch (err) { showError(err); }
};

// Create the database on first use (writable by anyone, so every node that opens
// "app-notes" by name has the same one), then follow it.
api("POST", `/v1/databases`, { name: DB, type: "documents", write: ["*"] })
  .then(follow)
  .catch(showError);
