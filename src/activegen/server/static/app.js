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

const RESERVED = new Set(["x", "u", "?", "g"]);
const STAGE = 320;        // the big image's longer side, in CSS pixels
const THUMB = 52;         // a thumbnail's longer side
const GUESS_KEY = "activegen-show-guess";
let classes = [];
let keys = [];            // keys[i] = the key of class i
let batch = [];           // the queries (or audit images) this labeler holds now
let mode = "pool";        // "pool": the strategy's queries; "audit": audit images
let answers = new Map();  // query id -> label given in this batch
let current = 0;          // index into batch
let busy = false;
let pollTimer = null;
let lastState = null;
let waitingSince = null;  // when this page started waiting for the next batch
let showGuess = localStorage.getItem(GUESS_KEY) !== "0";

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
  const pool = "1234567890abcdefhijklmnopqrstvwyz".split("").filter((k) => !RESERVED.has(k));
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
function pct(x) { return (100 * x).toFixed(1) + "%"; }

// An image-folder session's audit images ride in the same strip (ids "a0", "a1", ...).
function imageUrl(q) {
  return q.audit_id !== undefined ? `/api/audit/image/${q.audit_id}.png` : `/api/image/${q.id}.png`;
}

// Scale an image so its longer side is `side` pixels, keeping its aspect ratio. A tiny image
// enlarged PIXELATED_SCALE times or more (an 8x8 or 28x28 digit) is drawn as blocks, which
// keeps its strokes sharp; anything else (a photo) is resampled smoothly. The server's
// display_png enlarges by the same rule.
const PIXELATED_SCALE = 4;
function fitImage(img, side) {
  const w = img.naturalWidth, h = img.naturalHeight;
  if (!w || !h) return;
  const scale = side / Math.max(w, h);
  img.style.width = Math.round(w * scale) + "px";
  img.style.height = Math.round(h * scale) + "px";
  img.classList.toggle("pixelated", scale >= PIXELATED_SCALE);
}

function showView(name) {
  $("query").hidden = name !== "query";
  $("waiting").hidden = name !== "waiting";
  $("result").hidden = name !== "result";
}

function render() {
  const strip = $("strip");
  strip.innerHTML = "";
  batch.forEach((q, i) => {
    const div = document.createElement("div");
    div.className = "thumb" + (i === current ? " current" : "") + (answers.has(q.id) ? " done" : "");
    div.dataset.queryId = String(q.id);
    const frame = document.createElement("div");
    frame.className = "frame";
    const img = document.createElement("img");
    img.alt = `query ${q.id}`;
    img.addEventListener("load", () => fitImage(img, THUMB));
    img.src = withToken(imageUrl(q));
    frame.appendChild(img);
    const ans = document.createElement("div");
    ans.className = "ans";
    ans.textContent = answers.has(q.id) ? labelName(answers.get(q.id)) : "";
    div.append(frame, ans);
    div.addEventListener("click", () => { current = i; render(); });
    strip.appendChild(div);
  });
  const q = batch[current];
  const big = $("big");
  const enabled = Boolean(q) && !answers.has(q.id) && !busy;
  document.querySelectorAll("#buttons button.cls, #cant-tell").forEach((b) => {
    b.disabled = !enabled;
  });
  // undo takes back an answer of this batch: nothing to take back once the round has closed
  const undoButton = $("undo");
  if (undoButton) undoButton.disabled = busy || answers.size === 0;
  if (q) {
    const src = withToken(imageUrl(q));
    if (big.dataset.src !== src) {
      big.dataset.src = src;
      $("stage").classList.add("loading");
      big.src = src;
    }
    big.dataset.queryId = String(q.id);
    const origin = q.kind === "synth" ? `synthesized${q.generator_id ? " by " + q.generator_id : ""}`
      : q.audit_id !== undefined ? `audit image ${q.path}` : q.path ? q.path
      : `pool image #${q.pool_index}`;
    $("meta").textContent = `query ${q.id} · ${origin} · ${current + 1} of ${batch.length}`;
  } else {
    big.removeAttribute("src");
    big.dataset.src = "";
    big.dataset.queryId = "";
    $("stage").classList.remove("loading");
    $("meta").textContent = "";
  }
  renderGuess(q);
}

// The model's class and confidence for the current image, when the person wants to see it;
// never on an audit image (it could pull the answers that measure the model toward it).
function renderGuess(q) {
  const guess = $("guess");
  $("show-guess").checked = showGuess;
  guess.className = "";
  if (!q) { guess.textContent = ""; return; }
  if (q.audit_id !== undefined) {
    guess.className = "none";
    guess.textContent = "no guess on audit images";
  } else if (!q.guess) {
    guess.className = "none";
    guess.textContent = "no model guess yet";
  } else if (!showGuess) {
    guess.className = "none";
    guess.textContent = "model's guess hidden";
  } else {
    guess.textContent = `model: ${q.guess.class} (${pct(q.guess.confidence)})`;
  }
}

function renderState(state) {
  lastState = state;
  $("title").textContent = state.name;
  $("round").textContent = state.round;
  $("asked").textContent = state.answered;
  $("budget").textContent = state.budget;
  $("budgetbar").max = state.budget;
  $("budgetbar").value = state.answered;
  $("labeled").textContent = state.labeled;
  $("abstained").textContent = state.abstained;
  $("leave").hidden = !state.model_export;
  const audit = state.audit;
  $("auditstat").hidden = !audit;
  $("audithelp").hidden = !audit;
  $("auditline").hidden = !audit;
  if (audit) {
    $("audited").textContent = audit.answered;
    $("auditsize").textContent = audit.size;
    $("auditline").textContent = audit.accuracy === null
      ? `Audit: ${audit.answered} of ${audit.size} random images labeled; the estimate ` +
        "starts once the model has a guess for an audited image."
      : `Audit accuracy ${audit.accuracy.toFixed(3)} (95% CI ${audit.low.toFixed(3)}–` +
        `${audit.high.toFixed(3)}), ${audit.correct} of ${audit.counted} random images ` +
        `(${audit.answered} of ${audit.size} labeled)`;
  }
  if (audit && audit.curve.length) drawAuditCurve(audit);
  else if (state.test_sets.length && state.curve.length) drawCurve(state);
  renderStopping(state.stopping);
  renderFeatures(state.feature_preparation);
  if (!$("waiting").hidden) renderWaiting();
}

// Features still being learned ("preparing features: epoch 3 of 40"), or why they failed.
function renderFeatures(features) {
  const line = $("featurenotice");
  if (!features || features.status === "ready") { line.hidden = true; return; }
  line.textContent = features.status === "training"
    ? `${features.message}. You can label this batch meanwhile; the next one is chosen on ` +
      "the new features." : features.message;
  line.hidden = false;
}

// The session's stopping criterion ([stopping]): a notice once it has fired.
function renderStopping(stopping) {
  const notice = $("stopnotice");
  if (!stopping || !stopping.fired) { notice.hidden = true; return; }
  notice.textContent = `You can stop here: ${stopping.criterion} is satisfied ` +
    `(since round ${stopping.round}, ${stopping.n_labels} labels).`;
  notice.hidden = false;
}

const W = 320, H = 200, L = 38, R = 10, T = 10, B = 28;

// Axes for label counts xmin..xmax and accuracies 0..1, padded so that no point (a first
// round, an accuracy of 1) lies on the frame.
function axes(xmin, xmax) {
  const pad = Math.max(1, 0.06 * (xmax - xmin));
  const lo = xmin - pad, hi = xmax + pad;
  const sx = (x) => L + (x - lo) / (hi - lo) * (W - L - R);
  const sy = (y) => T + 6 + (1 - y) * (H - T - B - 6);
  let svg = `<line class="axis" x1="${L}" y1="${sy(0)}" x2="${W - R}" y2="${sy(0)}"/>`;
  svg += `<line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${sy(0)}"/>`;
  for (const y of [0, 0.5, 1]) svg += `<text x="${L - 4}" y="${sy(y) + 4}" text-anchor="end">${y}</text>`;
  svg += `<text x="${sx(xmin)}" y="${H - 8}" text-anchor="middle">${xmin}</text>`;
  if (xmax > xmin) svg += `<text x="${W - R}" y="${H - 8}" text-anchor="end">${xmax} labels</text>`;
  return { sx, sy, svg };
}

function drawCurve(state) {
  $("curvecard").hidden = false;
  $("curvetitle").textContent = "learning curve";
  $("curvenote").textContent = "";
  const xs = state.curve.map((p) => p.n_labels);
  const xmin = Math.min(...xs), xmax = Math.max(...xs);
  const { sx, sy, svg: frame } = axes(xmin, xmax);
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="accuracy against labels">` + frame;
  state.test_sets.forEach((name, k) => {
    const pts = state.curve.filter((p) => name in p.accuracy)
      .map((p) => `${sx(p.n_labels).toFixed(1)},${sy(p.accuracy[name]).toFixed(1)}`);
    const color = colors[k % colors.length];
    svg += `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(" ")}"/>`;
    const last = state.curve[state.curve.length - 1];
    if (name in last.accuracy) {
      svg += `<text x="${W - R}" y="${sy(last.accuracy[name]) - 6}" text-anchor="end" fill="${color}">` +
        `${escapeHtml(name)} ${pct(last.accuracy[name])}</text>`;
    }
  });
  $("curve").innerHTML = svg + "</svg>";
}

// The audit estimate of each round's model, with its 95% interval as a band: the quality
// while labeling, before the budget is spent.
function drawAuditCurve(audit) {
  $("curvecard").hidden = false;
  $("curvetitle").textContent = "audit accuracy (95% CI)";
  const pts = audit.curve;
  const xs = pts.map((p) => p.n_labels);
  const xmin = Math.min(...xs), xmax = Math.max(...xs);
  const { sx, sy, svg: frame } = axes(xmin, xmax);
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="audit accuracy against labels">` + frame;
  const upper = pts.map((p) => `${sx(p.n_labels).toFixed(1)},${sy(p.high).toFixed(1)}`);
  const lower = pts.slice().reverse().map((p) => `${sx(p.n_labels).toFixed(1)},${sy(p.low).toFixed(1)}`);
  if (pts.length > 1) svg += `<polygon class="band" points="${upper.concat(lower).join(" ")}"/>`;
  svg += `<polyline fill="none" stroke="#2563eb" stroke-width="2" points="` +
    pts.map((p) => `${sx(p.n_labels).toFixed(1)},${sy(p.accuracy).toFixed(1)}`).join(" ") + `"/>`;
  for (const p of pts) {  // each round's interval as a bar (a band needs two rounds)
    const x = sx(p.n_labels).toFixed(1);
    svg += `<line class="ci" x1="${x}" y1="${sy(p.low).toFixed(1)}" x2="${x}" y2="${sy(p.high).toFixed(1)}"/>`;
    svg += `<circle cx="${x}" cy="${sy(p.accuracy).toFixed(1)}" r="2.5" fill="#2563eb"/>`;
  }
  $("curve").innerHTML = svg + "</svg>";
  const last = pts[pts.length - 1];
  $("curvenote").textContent = `now ${pct(last.accuracy)} (${pct(last.low)}–${pct(last.high)}) ` +
    `on ${last.counted} audit images, model of ${last.n_labels} labels`;
}

function renderWaiting() {
  const state = lastState;
  const seconds = waitingSince === null ? 0 : (Date.now() - waitingSince) / 1000;
  if (!state) return;
  const features = state.feature_preparation;
  $("waitline").textContent = features && features.status === "training"
    ? `${features.message}; the next ${state.batch_size} images are chosen on them…`
    : `Retraining on ${state.labeled + state.imported} labels and ` +
      `choosing the next ${state.batch_size} images… ${seconds.toFixed(0)} s`;
  $("waitdetail").textContent = state.worker_error ? `Preparing failed: ${state.worker_error}`
    : state.round_seconds !== null
      ? `The last round took ${state.round_seconds.toFixed(1)} s to prepare.` : "";
}

function renderResult(state) {
  const card = $("result");
  const audit = state.audit;
  let html = "<h2>Done: the budget is spent</h2>";
  if (audit && audit.accuracy !== null) {
    const half = (100 * audit.half_width).toFixed(0);
    html += `<div class="big" id="result-accuracy">${pct(audit.accuracy)}</div>` +
      `<div class="ci">accuracy, 95% CI ${pct(audit.low)}–${pct(audit.high)}, measured on ` +
      `${audit.counted} random images the model never trained on</div>` +
      `<p>The interval is about ±${half} points because ${audit.counted} images is a small ` +
      "sample; it narrows with the square root of the number of audit images: about " +
      `${audit.to_halve} would halve it. To audit more, start a new store with ` +
      `<code>--audit ${audit.to_halve} --labels labels.csv</code> (this page's CSV export: ` +
      "every answer is kept, these audit answers included, so only the new audit images " +
      "are asked).</p>";
  } else if (state.test_sets.length && state.curve.length) {
    const last = state.curve[state.curve.length - 1];
    html += state.test_sets.filter((n) => n in last.accuracy).map((n) =>
      `<div class="big">${pct(last.accuracy[n])}</div><div class="ci">accuracy on the held-out ` +
      `set ${escapeHtml(n)} (${last.n_labels} labels)</div>`).join("");
  } else {
    html += `<p>${state.labeled} labels given.</p>`;
  }
  html += '<div class="downloads">';
  if (state.model_export) {
    html += `<a id="result-model" href="${withToken("/api/model.npz")}">model</a>` +
      `<a id="result-preds" href="${withToken("/api/predictions.csv")}">predictions (CSV)</a>`;
  }
  html += `<a id="result-csv" href="${withToken("/api/export.csv")}">labels (CSV)</a>` +
    `<a id="result-json" href="${withToken("/api/export.json")}">labels (JSON)</a></div>`;
  html += "<p>To label more, run the same command with a larger <code>--budget</code>: " +
    "the same store continues where it stopped.</p>";
  card.innerHTML = html;
  showView("result");
}

async function refreshState() {
  try { renderState(await api("/api/state")); } catch (e) { say(e.message); }
  return lastState;
}

function setBatch(queries, kind) {
  const ids = queries.map((q) => q.id).join(",");
  if (kind !== mode || ids !== batch.map((q) => q.id).join(",")) {
    batch = queries;
    answers = new Map([...answers].filter(([id]) => batch.some((q) => q.id === id)));
    current = Math.max(0, batch.findIndex((q) => !answers.has(q.id)));
  }
  mode = kind;
}

async function loadBatch() {
  clearTimeout(pollTimer);
  const state = await refreshState();
  // Audit images due come first: after each batch, while the model retrains.
  if (state && state.audit && state.audit.answered < state.audit.due) {
    try {
      const due = await api(`/api/audit/batch?labeler=${encodeURIComponent(labeler)}`);
      if (due.queries.length) {
        setBatch(due.queries.map((a) => ({ ...a, id: `a${a.audit_id}`, kind: "audit" })), "audit");
        waitingSince = null;
        showView("query");
        say(state.finished
          ? "The budget is spent. Now the rest of the audit: random images, never trained on."
          : "Audit images: drawn at random and never trained on, they measure the model.");
        render();
        return;
      }
    } catch (e) { say(e.message); }
  }
  let reply;
  try { reply = await api("/api/batch", { labeler }); }
  catch (e) { say(e.message); pollTimer = setTimeout(loadBatch, 2000); return; }
  setBatch(reply.queries, "pool");
  document.body.dataset.round = String(reply.round);
  delete document.body.dataset.preparing;
  if (batch.length) {
    waitingSince = null;
    showView("query");
    say("");
  } else if (reply.finished) {
    waitingSince = null;
    renderResult(await refreshState() || state);
  } else if (reply.preparing) {
    document.body.dataset.preparing = "1";
    if (waitingSince === null) waitingSince = Date.now();
    showView("waiting");
    renderWaiting();
    pollTimer = setTimeout(loadBatch, 500);
  } else {
    showView("query");
    say("Waiting for the next batch (others are still labeling this one)…");
    pollTimer = setTimeout(loadBatch, 2000);
  }
  render();
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
    if (first < 0 && mode === "audit") {
      batch = [];
      answers = new Map();
      await loadBatch();
      return;
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
  if (busy || answers.size === 0) return;
  busy = true;
  try {
    let undone;
    if (mode === "audit") {
      const reply = await api("/api/audit/undo", { labeler });
      undone = `a${reply.audit_id}`;
    } else {
      undone = (await api("/api/undo", { labeler })).query.id;
    }
    answers.delete(undone);
    busy = false;
    const i = batch.findIndex((q) => q.id === undone);
    if (i >= 0) { current = i; render(); refreshState(); } else { await loadBatch(); }
    say(`undone: ${mode === "audit" ? "audit image " + undone.slice(1) : "query " + undone}`);
  } catch (e) {
    busy = false;
    say(e.message);
    render();
  }
}

function toggleGuess() {
  showGuess = !showGuess;
  localStorage.setItem(GUESS_KEY, showGuess ? "1" : "0");
  renderGuess(batch[current]);
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target instanceof HTMLInputElement) return;
  const key = event.key.toLowerCase();
  if (key === "u" || event.key === "Backspace") { event.preventDefault(); undo(); return; }
  if (key === "x" || event.key === "?") { event.preventDefault(); answer(-1); return; }
  if (key === "g") { event.preventDefault(); toggleGuess(); return; }
  if (event.key === "ArrowRight") { current = Math.min(batch.length - 1, current + 1); render(); return; }
  if (event.key === "ArrowLeft") { current = Math.max(0, current - 1); render(); return; }
  const i = keys.indexOf(key);
  if (i >= 0) { event.preventDefault(); answer(i); }
});

async function start() {
  for (const [id, path] of [["exp-csv", "/api/export.csv"], ["exp-json", "/api/export.json"],
    ["exp-ls", "/api/export.labelstudio.json"], ["exp-model", "/api/model.npz"],
    ["exp-preds", "/api/predictions.csv"]]) $(id).href = withToken(path);
  const big = $("big");
  big.addEventListener("load", () => { fitImage(big, STAGE); $("stage").classList.remove("loading"); });
  big.addEventListener("error", () => $("stage").classList.remove("loading"));
  $("show-guess").addEventListener("change", toggleGuess);
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
