// The labeling page: plain JavaScript, no build step. It talks to the JSON API only.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const labeler = (() => {
  const key = "activegen-labeler";
  let id = params.get("labeler") || localStorage.getItem(key);
  if (!id) {
    id = "web-" + Math.random().toString(36).slice(2, 10);
  }
  localStorage.setItem(key, id);
  return id;
})();

const RESERVED = new Set(["x", "u", "?"]);
let classes = [];
let keys = [];            // keys[i] = the key of class i
let batch = [];           // the queries this labeler holds now
let answers = new Map();  // query id -> label given in this batch
let current = 0;          // index into batch
let busy = false;
let pollTimer = null;

const $ = (id) => document.getElementById(id);

function withToken(url) {
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

async function api(path, body) {
  const options = { headers: {} };
  if (token) options.headers["X-Activegen-Token"] = token;
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.headers["X-Activegen-Request"] = "1";  // proves the request is not cross-site
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let payload = null;
  try { payload = await response.json(); } catch (e) { payload = null; }
  if (!response.ok) {
    const detail = payload && payload.detail ? payload.detail : response.statusText;
    const error = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    error.status = response.status;
    throw error;
  }
  return payload;
}

function say(text) { $("message").textContent = text || ""; }

function classKeys(names) {
  // A one-character class name is its own key (digits: "5" is 5); otherwise 1..9, 0, a..z.
  const own = names.map((n) => String(n).toLowerCase());
  if (own.every((k) => k.length === 1 && !RESERVED.has(k)) && new Set(own).size === own.length) {
    return own;
  }
  const pool = "1234567890abcdefghijklmnopqrstvwyz".split("").filter((k) => !RESERVED.has(k));
  return names.map((_, i) => pool[i] || "");
}

function buildButtons() {
  const box = $("buttons");
  box.innerHTML = "";
  classes.forEach((name, i) => {
    const b = document.createElement("button");
    b.className = "cls";
    b.dataset.label = String(i);
    b.innerHTML = `${escapeHtml(name)}<span class="key">${escapeHtml(keys[i])}</span>`;
    b.addEventListener("click", () => answer(i));
    box.appendChild(b);
  });
  const abstain = document.createElement("button");
  abstain.className = "abstain";
  abstain.id = "cant-tell";
  abstain.innerHTML = `can't tell<span class="key">x</span>`;
  abstain.addEventListener("click", () => answer(-1));
  box.appendChild(abstain);
  const undoButton = document.createElement("button");
  undoButton.id = "undo";
  undoButton.innerHTML = `undo<span class="key">u</span>`;
  undoButton.addEventListener("click", undo);
  box.appendChild(undoButton);
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" }[c]));
}

function labelName(label) { return label < 0 ? "?" : classes[label]; }

// An image-folder session's audit images ride in the same strip (ids "a0", "a1", ...).
function imageUrl(q) {
  return q.audit_id !== undefined ? `/api/audit/image/${q.audit_id}.png` : `/api/image/${q.id}.png`;
}

function render() {
  const strip = $("strip");
  strip.innerHTML = "";
  batch.forEach((q, i) => {
    const div = document.createElement("div");
    div.className = "thumb" + (i === current ? " current" : "") + (answers.has(q.id) ? " done" : "");
    div.dataset.queryId = String(q.id);
    div.innerHTML = `<img alt="query ${q.id}" src="${withToken(imageUrl(q))}">` +
      `<div class="ans">${answers.has(q.id) ? escapeHtml(labelName(answers.get(q.id))) : ""}</div>`;
    div.addEventListener("click", () => { current = i; render(); });
    strip.appendChild(div);
  });
  const q = batch[current];
  const big = $("big");
  const enabled = Boolean(q) && !answers.has(q.id) && !busy;
  document.querySelectorAll("#buttons button.cls, #cant-tell").forEach((b) => {
    b.disabled = !enabled;
  });
  if (q) {
    big.src = withToken(imageUrl(q));
    big.dataset.queryId = String(q.id);
    big.style.visibility = "visible";
    const origin = q.kind === "synth" ? `synthesized${q.generator_id ? " by " + q.generator_id : ""}`
      : q.audit_id !== undefined ? `audit image ${q.path}` : q.path ? q.path
      : `pool image #${q.pool_index}`;
    $("meta").textContent = `query ${q.id} · ${origin} · ${current + 1} of ${batch.length}`;
  } else {
    big.removeAttribute("src");
    big.dataset.queryId = "";
    big.style.visibility = "hidden";
    $("meta").textContent = "";
  }
}

function renderState(state) {
  $("title").textContent = state.name;
  $("round").textContent = state.round;
  $("asked").textContent = state.answered;
  $("budget").textContent = state.budget;
  $("budgetbar").max = state.budget;
  $("budgetbar").value = state.answered;
  $("labeled").textContent = state.labeled;
  $("abstained").textContent = state.abstained;
  if (state.test_sets.length && state.curve.length) drawCurve(state);
  renderStopping(state.stopping);
  if (state.audit) {
    const a = state.audit;
    $("audit").hidden = false;
    $("auditline").textContent = a.accuracy === null
      ? `audit: ${a.answered} of ${a.size} random images labeled; no estimate yet`
      : `audit accuracy ${a.accuracy.toFixed(3)} (95% CI ${a.low.toFixed(3)}–${a.high.toFixed(3)}), ` +
        `${a.correct} of ${a.counted} random images (${a.answered} of ${a.size} labeled)`;
  }
}

// The session's stopping criterion ([stopping]): a notice once it has fired.
function renderStopping(stopping) {
  const notice = $("stopnotice");
  if (!stopping || !stopping.fired) { notice.hidden = true; return; }
  notice.textContent = `You can stop here: ${stopping.criterion} is satisfied ` +
    `(since round ${stopping.round}, ${stopping.n_labels} labels).`;
  notice.hidden = false;
}

function drawCurve(state) {
  $("curvecard").hidden = false;
  const W = 320, H = 200, L = 38, R = 10, T = 10, B = 28;
  const xs = state.curve.map((p) => p.n_labels);
  const xmin = Math.min(...xs), xmax = Math.max(...xs, xmin + 1);
  const sx = (x) => L + (x - xmin) / (xmax - xmin) * (W - L - R);
  const sy = (y) => T + (1 - y) * (H - T - B);
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="accuracy against labels">`;
  svg += `<line class="axis" x1="${L}" y1="${sy(0)}" x2="${W - R}" y2="${sy(0)}"/>`;
  svg += `<line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${sy(0)}"/>`;
  for (const y of [0, 0.5, 1]) svg += `<text x="${L - 4}" y="${sy(y) + 4}" text-anchor="end">${y}</text>`;
  svg += `<text x="${L}" y="${H - 8}">${xmin}</text>`;
  svg += `<text x="${W - R}" y="${H - 8}" text-anchor="end">${xmax} labels</text>`;
  state.test_sets.forEach((name, k) => {
    const pts = state.curve.filter((p) => name in p.accuracy)
      .map((p) => `${sx(p.n_labels).toFixed(1)},${sy(p.accuracy[name]).toFixed(1)}`);
    const color = colors[k % colors.length];
    svg += `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(" ")}"/>`;
    const last = state.curve[state.curve.length - 1];
    if (name in last.accuracy) {
      svg += `<text x="${W - R}" y="${sy(last.accuracy[name]) - 6}" text-anchor="end" fill="${color}">` +
        `${escapeHtml(name)} ${(100 * last.accuracy[name]).toFixed(1)}%</text>`;
    }
  });
  $("curve").innerHTML = svg + "</svg>";
}

async function refreshState() {
  try { renderState(await api("/api/state")); } catch (e) { say(e.message); }
}

async function loadBatch() {
  clearTimeout(pollTimer);
  let reply;
  try { reply = await api("/api/batch", { labeler }); }
  catch (e) { say(e.message); pollTimer = setTimeout(loadBatch, 2000); return; }
  const ids = reply.queries.map((q) => q.id).join(",");
  if (ids !== batch.map((q) => q.id).join(",")) {
    batch = reply.queries;
    answers = new Map([...answers].filter(([id]) => batch.some((q) => q.id === id)));
    current = Math.max(0, batch.findIndex((q) => !answers.has(q.id)));
  }
  document.body.dataset.round = String(reply.round);
  delete document.body.dataset.preparing;
  if (reply.finished && !batch.length) {
    try {  // an image-folder session: after the budget, the audit images
      const audit = await api(`/api/audit/batch?labeler=${encodeURIComponent(labeler)}`);
      batch = audit.queries.map((a) => ({ ...a, id: `a${a.audit_id}`, kind: "audit" }));
      answers = new Map();
      current = 0;
    } catch (e) { /* a dataset session has no audit */ }
  }
  if (reply.finished && batch.length) {
    say("The budget is spent. Now the audit: random images, never trained on, for an honest estimate.");
  } else if (reply.finished) {
    say("The budget is spent: the session is finished. Export the labels below.");
  } else if (!batch.length && reply.preparing) {
    say("Preparing the next batch: the model is retraining on the new answers…");
    document.body.dataset.preparing = "1";
    pollTimer = setTimeout(loadBatch, 500);
  } else if (!batch.length) {
    say("Waiting for the next batch (others are still labeling this one)…");
    pollTimer = setTimeout(loadBatch, 2000);
  } else {
    say("");
  }
  render();
  refreshState();
}

async function answer(label) {
  const q = batch[current];
  if (!q || busy || answers.has(q.id)) return;
  busy = true;
  render();
  try {
    const reply = q.audit_id !== undefined
      ? await api("/api/audit/label", { audit_id: q.audit_id, label, labeler })
      : await api("/api/label", { query_id: q.id, label, labeler });
    answers.set(q.id, label);
    say("");
    busy = false;
    if (reply.round_closed) {
      batch = [];
      answers = new Map();
      await loadBatch();
      return;
    }
    const next = batch.findIndex((item, i) => i > current && !answers.has(item.id));
    const first = batch.findIndex((item) => !answers.has(item.id));
    if (next >= 0) current = next; else if (first >= 0) current = first;
    if (first < 0 && q.audit_id !== undefined) {
      batch = [];
      say("The audit is done. Download the model and the predictions below.");
    } else if (first < 0) {
      say("Batch done; waiting for the other labelers…");
      pollTimer = setTimeout(loadBatch, 1500);
    }
    render();
    refreshState();
  } catch (e) {
    busy = false;
    say(e.message);
    render();
    if (e.status === 409 || e.status === 404) loadBatch();
  }
}

async function undo() {
  if (busy) return;
  busy = true;
  try {
    const reply = await api("/api/undo", { labeler });
    answers.delete(reply.query.id);
    busy = false;
    const i = batch.findIndex((q) => q.id === reply.query.id);
    if (i >= 0) { current = i; render(); refreshState(); } else { await loadBatch(); }
    say(`undone: query ${reply.query.id}`);
  } catch (e) {
    busy = false;
    say(e.message);
    render();
  }
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (key === "u" || event.key === "Backspace") { event.preventDefault(); undo(); return; }
  if (key === "x" || event.key === "?") { event.preventDefault(); answer(-1); return; }
  if (event.key === "ArrowRight") { current = Math.min(batch.length - 1, current + 1); render(); return; }
  if (event.key === "ArrowLeft") { current = Math.max(0, current - 1); render(); return; }
  const i = keys.indexOf(key);
  if (i >= 0) { event.preventDefault(); answer(i); }
});

async function start() {
  for (const [id, path] of [["exp-csv", "/api/export.csv"], ["exp-json", "/api/export.json"],
    ["exp-ls", "/api/export.labelstudio.json"], ["exp-model", "/api/model.npz"],
    ["exp-preds", "/api/predictions.csv"]]) $(id).href = withToken(path);
  try {
    const state = await api("/api/state");
    classes = state.classes;
    keys = classKeys(classes);
    buildButtons();
    renderState(state);
  } catch (e) { say(e.message); return; }
  await loadBatch();
}

start();
