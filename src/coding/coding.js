// regard coding: keyboard-first coding of one queue. Faces are fetched as blobs (kept in memory
// only, the next person preloaded) and never cached: the server sends Cache-Control: no-store.
(() => {
  "use strict";
  const body = document.body;
  const attribute = body.dataset.attribute;
  if (!attribute) return; // not the coding page
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const faceImg = document.getElementById("face");
  const contextImg = document.getElementById("context");
  const caption = document.getElementById("caption");
  const section = document.getElementById("person");
  const statusLine = document.getElementById("status");
  const cache = new Map(); // person id -> Promise of an object URL
  let queue = [];
  let busy = false;
  let done = 0;

  const setStatus = (text) => { statusLine.textContent = text; };

  function picture(path) {
    return fetch(path, { credentials: "same-origin", cache: "no-store" }).then((r) => {
      if (r.status === 401) { location.href = "/login"; throw new Error("signed out"); }
      if (!r.ok) throw new Error(`${path}: ${r.status}`);
      return r.blob();
    }).then((b) => URL.createObjectURL(b));
  }

  function face(id) {
    if (!cache.has(id)) {
      const p = picture(`/face/${id}`);
      p.catch(() => cache.delete(id));
      cache.set(id, p);
    }
    return cache.get(id);
  }

  function forgetExcept(keep) {
    for (const [id, p] of cache) {
      if (!keep.has(id)) {
        p.then((u) => URL.revokeObjectURL(u)).catch(() => {});
        cache.delete(id);
      }
    }
  }

  async function refresh() {
    const r = await fetch(`/api/queue/${encodeURIComponent(attribute)}?n=3`, { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login"; return; }
    if (!r.ok) throw new Error(`queue: ${r.status}`);
    const data = await r.json();
    queue = data.persons;
    document.getElementById("left").textContent = String(data.left);
    forgetExcept(new Set(queue.map((p) => p.person_id)));
    // The current person and the next ones load now: the next face is there at once.
    queue.forEach((p) => face(p.person_id).catch(() => {}));
    await show();
  }

  async function show() {
    const p = queue[0];
    contextImg.hidden = true;
    if (contextImg.src) { URL.revokeObjectURL(contextImg.src); contextImg.removeAttribute("src"); }
    if (!p) {
      section.dataset.id = "";
      faceImg.removeAttribute("src");
      caption.textContent = "Nothing left to code in this queue.";
      body.dataset.state = "empty";
      return;
    }
    const film = p.film_title ? `${p.film_title}${p.film_year ? ` (${p.film_year})` : ""}` : "Film not given";
    caption.textContent = `${film} · ${p.media_kind} · n° ${p.number}`;
    try {
      faceImg.src = await face(p.person_id);
    } catch (e) {
      setStatus(`The face could not be rendered: ${e.message}. Skip (s) or try later.`);
    }
    section.dataset.id = String(p.person_id);
    body.dataset.state = "ready";
  }

  async function post(path, fields) {
    const form = new URLSearchParams({ csrf, attribute, ...fields });
    const r = await fetch(path, { method: "POST", body: form, credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login"; throw new Error("signed out"); }
    if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
    return r.json();
  }

  async function act(kind, label) {
    if (busy) return;
    const p = queue[0];
    if (!p && kind !== "undo") return;
    busy = true;
    body.dataset.state = "busy";
    try {
      if (kind === "label") {
        await post("/api/label", { person_id: p.person_id, label });
        done += 1;
        setStatus(`Coded n° ${p.number} as ${label}.`);
      } else if (kind === "skip") {
        await post("/api/skip", { person_id: p.person_id });
        setStatus(`Skipped n° ${p.number}.`);
      } else {
        const u = await post("/api/undo", {});
        if (u.person_id === null) {
          setStatus("Nothing to undo.");
        } else {
          done = Math.max(0, done - 1);
          setStatus("Undone: code this person again.");
        }
      }
      document.getElementById("done").textContent = String(done);
      await refresh();
    } catch (e) {
      setStatus(`Not saved: ${e.message}`);
      body.dataset.state = queue.length ? "ready" : "empty";
    } finally {
      busy = false;
    }
  }

  async function toggleContext() {
    const p = queue[0];
    if (!p) return;
    if (!contextImg.hidden) { contextImg.hidden = true; return; }
    try {
      if (contextImg.src) URL.revokeObjectURL(contextImg.src);
      contextImg.src = await picture(`/context/${p.person_id}`);
      contextImg.hidden = false;
    } catch (e) {
      setStatus(`No context: ${e.message}`);
    }
  }

  for (const b of document.querySelectorAll("button.code")) {
    b.addEventListener("click", () => act("label", b.dataset.label));
  }
  document.getElementById("skip").addEventListener("click", () => act("skip"));
  document.getElementById("undo").addEventListener("click", () => act("undo"));
  document.getElementById("context-toggle").addEventListener("click", toggleContext);

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (e.target.closest && e.target.closest("input, textarea, select")) return;
    const key = e.key === "Backspace" ? "z" : e.key.toLowerCase();
    const button = document.querySelector(`#keys [data-key="${CSS.escape(key)}"]`);
    if (button) {
      e.preventDefault();
      button.click();
    }
  });

  refresh().catch((e) => setStatus(e.message));
})();
