/* mtbsync dashboard: plain JS, no build step. Talks to the API under /api and listens to /api/events. */
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) node.append(kid.nodeType ? kid : String(kid));
  return node;
};
const fmtS = (t, digits = 3) => (t === null || t === undefined || !isFinite(t) ? "–" : Number(t).toFixed(digits));
const fmtClock = (t) => {
  if (t === null || t === undefined || !isFinite(t)) return "–";
  const m = Math.floor(t / 60), s = t - 60 * m;
  return `${m}:${s.toFixed(3).padStart(6, "0")}`;
};
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/* ---- state shared with the tests (window.mtbsync) ---- */
const app = {
  session: { write: false, checked: false },
  events: { total: 0, telemetry: 0, stage: 0, run: 0, markers: 0 },
  runs: [],
  telemetry: [],
  stages: [],
  run: null, alignment: null, markers: null,
  linked: true,
  leader: "new",
};
window.mtbsync = app;

/* ---- write access: the printed URL's #token=... is traded once for an HttpOnly session cookie ----
   The token is taken out of the address bar at once and not kept (no localStorage, no variable):
   from then on the browser sends the cookie, which page scripts cannot read. */
async function startSession() {
  const match = location.hash.match(/^#token=([^&]*)(?:&(.*))?$/);
  let traded = null;
  app.session.checked = false;
  localStorage.removeItem("mtbsync-token");  // where an older dashboard kept it
  if (match) {
    history.replaceState(null, "", location.pathname + location.search + (match[2] ? `#${match[2]}` : "#/"));
    try {
      const res = await fetch("/api/session", { method: "POST", headers: { Authorization: `Bearer ${decodeURIComponent(match[1])}` } });
      traded = res.ok;
    } catch (_) { traded = false; }
  }
  try { app.session = { ...(await api("/api/session")), checked: true }; } catch (_) { app.session = { write: false, checked: true }; }
  const note = $("#auth-note");
  if (!app.session.write) {
    note.textContent = traded === false
      ? "The token in the address was not accepted: open the URL that mtbsync printed when it started (…/#token=…) to make changes."
      : "Read-only: to make changes, open the URL that mtbsync printed when it started (…/#token=…).";
  }
  note.hidden = app.session.write;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // Writes are authorized by the session cookie, which the browser sends with same-origin requests.
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${res.status}: ${detail}`);
  }
  return res.json();
}

let toastTimer = null;
function toast(text, error = false) {
  const node = $("#toast");
  node.textContent = text;
  node.className = error ? "toast error" : "toast";
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, error ? 5000 : 2200);
}

/* ---- charts: small hand-written canvas helpers ---- */
function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, h = canvas.clientHeight || Number(canvas.getAttribute("height")) || 100;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function lineChart(canvas, xs, ys, { color = css("--accent"), min = 0, max = null, unit = "", empty = "no data" } = {}) {
  const { ctx, w, h } = fitCanvas(canvas);
  const vals = ys.filter((v) => v !== null && isFinite(v));
  ctx.strokeStyle = css("--line"); ctx.lineWidth = 1;
  ctx.strokeRect(0.5, 0.5, w - 1, h - 1);
  if (!vals.length) {
    ctx.fillStyle = css("--muted"); ctx.font = "11px sans-serif"; ctx.fillText(empty, 8, h / 2 + 4);
    return;
  }
  const top = max !== null ? max : Math.max(...vals) * 1.15 || 1;
  const x0 = xs[0], x1 = xs[xs.length - 1] === x0 ? x0 + 1 : xs[xs.length - 1];
  const X = (x) => 2 + ((x - x0) / (x1 - x0)) * (w - 4), Y = (y) => h - 2 - ((y - min) / (top - min)) * (h - 14);
  ctx.beginPath();
  let started = false;
  xs.forEach((x, i) => {
    const y = ys[i];
    if (y === null || !isFinite(y)) { started = false; return; }
    if (!started) { ctx.moveTo(X(x), Y(y)); started = true; } else ctx.lineTo(X(x), Y(y));
  });
  ctx.strokeStyle = color; ctx.lineWidth = 1.6; ctx.stroke();
  ctx.lineTo(X(xs[xs.length - 1]), h); ctx.lineTo(X(xs[0]), h); ctx.closePath();
  ctx.fillStyle = color + "22"; ctx.fill();
  ctx.fillStyle = css("--muted"); ctx.font = "10px sans-serif";
  ctx.fillText(`${vals[vals.length - 1].toFixed(1)}${unit}  (max ${Math.max(...vals).toFixed(1)})`, 6, 11);
}

/* ---- live events ---- */
function connectEvents() {
  const live = $("#live");
  const source = new EventSource("/api/events");
  const count = (kind) => { app.events.total += 1; app.events[kind] = (app.events[kind] || 0) + 1; };
  source.onopen = () => { live.dataset.state = "live"; $("span", live).textContent = "live"; };
  source.onerror = () => { live.dataset.state = "down"; $("span", live).textContent = "reconnecting"; };
  source.addEventListener("hello", () => count("hello"));
  source.addEventListener("telemetry", (e) => {
    count("telemetry");
    app.telemetry.push(JSON.parse(e.data));
    if (app.telemetry.length > 600) app.telemetry.shift();
    if (currentView() === "runs") drawTelemetry();
  });
  source.addEventListener("stage", (e) => {
    count("stage");
    const data = JSON.parse(e.data);
    app.stages.push(data);
    if (app.stages.length > 500) app.stages.shift();
    if (currentView() === "runs") drawTimeline();
  });
  source.addEventListener("run", (e) => {
    count("run");
    const { run } = JSON.parse(e.data);
    const i = app.runs.findIndex((r) => r.id === run.id);
    if (i >= 0) app.runs[i] = run; else app.runs.unshift(run);
    if (currentView() === "runs") drawRuns();
    if (app.run && app.run.id === run.id) { app.run = run; drawRunHead(); }
  });
  source.addEventListener("markers", (e) => {
    count("markers");
    const { run_id } = JSON.parse(e.data);
    if (app.run && app.run.id === run_id) refreshRunData();
  });
}

/* ---- runs view ---- */
async function showRuns() {
  const [runs, history] = await Promise.all([api("/api/runs"), api("/api/perf/history?seconds=600")]);
  app.runs = runs;
  app.telemetry = history.telemetry.concat(app.telemetry.filter((s) => s.at > (history.telemetry.at(-1)?.at || 0)));
  app.stages = history.stages;
  drawRuns(); drawTimeline(); drawTelemetry();
}

function stateBadge(run) {
  return el("span", { class: "state", "data-state": run.state }, run.state);
}

function drawRuns() {
  const body = $("#runs-table tbody");
  const open = (run) => () => { if (!run.is_reference) location.hash = `#/run/${encodeURIComponent(run.id)}`; };
  body.replaceChildren(...app.runs.map((run) => el("tr", { "data-run": run.id, class: run.is_reference ? "is-ref" : "", onclick: open(run) },
    el("td", {}, el("b", {}, run.name), run.is_reference ? el("span", { class: "ref" }, "  reference") : null),
    el("td", {}, stateBadge(run), run.reason ? el("span", { class: "reason" }, run.reason) : null),
    el("td", { class: "num" }, run.duration ? `${run.duration.toFixed(1)} s` : "–"),
    el("td", { class: "num" }, run.coverage !== null && run.coverage !== undefined ? `${Math.round(run.coverage * 100)} %` : "–"),
    el("td", { class: "num" }, run.markers),
    el("td", { class: "num" }, run.needs_review || ""),
    el("td", { class: "num" }, run.is_reference ? "" : el("a", { href: `#/run/${encodeURIComponent(run.id)}` }, "Review →")),
  )));
  $("#runs-count").textContent = `${app.runs.length} run${app.runs.length === 1 ? "" : "s"}`;
}

function drawTimeline() {
  const box = $("#timeline");
  // Pair starts with finishes: a start without its finish is a running stage.
  const rows = [];
  for (const ev of app.stages) {
    const r = ev.record;
    if (ev.phase === "start") rows.push({ ...r, run_id: ev.run_id, running: true });
    else {
      const open = rows.findLast?.((x) => x.running && x.name === r.name && x.run_id === ev.run_id && Math.abs(x.started_at - r.started_at) < 1e-6);
      if (open) Object.assign(open, r, { running: false }); else rows.push({ ...r, run_id: ev.run_id, running: false });
    }
  }
  const recent = rows.slice(-40);
  const longest = Math.max(0.001, ...recent.map((r) => r.seconds || 0));
  box.replaceChildren(...(recent.length ? recent.map((r) => el("div", { class: `tl-row${r.running ? " running" : ""}`, title: `${r.name}: ${fmtS(r.seconds)} s, ${r.frames ?? "–"} items, ${r.device}` },
    el("span", { class: "tl-name" }, r.name, r.extra && r.extra.video ? el("span", { class: "muted" }, ` ${r.extra.video}`) : null),
    el("div", { class: "tl-track" }, el("div", { class: "tl-bar", style: `width:${Math.max(1, (100 * (r.seconds || 0)) / longest)}%` })),
    el("span", { class: "tl-secs" }, r.running ? "running" : `${fmtS(r.seconds, 2)} s`),
  )) : [el("div", { class: "empty" }, "No stages yet: they appear here live as runs are aligned or edited.")]));
  $("#stage-count").textContent = rows.length ? `${rows.length} stage${rows.length === 1 ? "" : "s"}` : "";
}

function drawTelemetry() {
  const s = app.telemetry.slice(-300);
  const xs = s.map((x) => x.at);
  lineChart($("#chart-cpu"), xs, s.map((x) => x.cpu_percent), { max: 100, unit: " %" });
  lineChart($("#chart-rss"), xs, s.map((x) => x.rss_mb), { color: css("--info"), unit: " MiB" });
  lineChart($("#chart-gpu"), xs, s.map((x) => x.gpu_util), { color: css("--good"), max: 100, unit: " %", empty: "no GPU reported (NVML)" });
  lineChart($("#chart-vram"), xs, s.map((x) => x.vram_used_mb), { color: css("--warn"), unit: " MiB", empty: "no GPU reported (NVML)" });
  const last = s.at(-1);
  $("#telemetry-now").textContent = last ? `${last.sse_clients ?? 0} live client${last.sse_clients === 1 ? "" : "s"}` : "";
}

/* ---- the warp in the browser: both mappings sampled densely, interpolated linearly ---- */
function interp(xs, ys, x) {
  if (!xs.length || x < xs[0] - 1e-9 || x > xs[xs.length - 1] + 1e-9) return null;
  let lo = 0, hi = xs.length - 1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (xs[mid] <= x) lo = mid; else hi = mid; }
  if (xs[hi] === xs[lo]) return ys[lo];
  return ys[lo] + ((x - xs[lo]) / (xs[hi] - xs[lo])) * (ys[hi] - ys[lo]);
}
const toRef = (tNew) => app.alignment ? interp(app.alignment.forward.t_new, app.alignment.forward.t_ref, tNew) : null;
const toNew = (tRef) => app.alignment ? interp(app.alignment.inverse.t_ref, app.alignment.inverse.t_new, tRef) : null;
app.toRef = toRef; app.toNew = toNew;

/* ---- run view ---- */
const V = { ref: null, new: null };
const programmatic = new Map();   // video -> the time we set ourselves (its seek must not lead)

async function showRun(runId) {
  const run = await api(`/api/runs/${encodeURIComponent(runId)}`);
  app.run = run;
  V.ref = $("#video-ref"); V.new = $("#video-new");
  const refMedia = run.is_reference ? run.media : run.reference_media;
  if (!V.new.src.endsWith(run.media.url)) V.new.src = run.media.url;
  if (refMedia && !V.ref.src.endsWith(refMedia.url)) V.ref.src = refMedia.url;
  $("#new-name").textContent = run.name;
  $("#ref-name").textContent = (app.runs.find((r) => r.id === run.reference_id) || {}).name || (run.reference_id || "");
  $$("#exports a").forEach((a) => {
    a.href = `/api/runs/${encodeURIComponent(run.id)}/exports/${a.dataset.fmt}`;
    a.setAttribute("download", "");
  });
  drawRunHead();
  await refreshRunData();
  syncOnLoad();
}

// Both players start at 0 s, but the warp may map the new run's 0 s to the reference's 1.65 s: once
// both videos can seek, put the reference where the warp says. A new run whose covered part starts
// later opens at that start (before it, there is no reference frame to show).
function syncOnLoad() {
  const canSeek = (v) => (v.readyState >= 1 ? Promise.resolve() : new Promise((ok) => v.addEventListener("loadedmetadata", ok, { once: true })));
  const run = app.run;
  Promise.all([canSeek(V.new), canSeek(V.ref)]).then(() => {
    // Only players still where a fresh load leaves them: a seek made meanwhile has synced them.
    if (app.run !== run || !app.alignment || !app.linked || V.new.currentTime !== 0 || V.ref.currentTime !== 0) return;
    const start = app.alignment.forward.t_new[0];
    if (start !== undefined && V.new.currentTime < start && toRef(V.new.currentTime) === null) setTime(V.new, start);
    app.leader = "new";
    follow("seek");
  });
}

function drawRunHead() {
  const run = app.run;
  $("#run-title").textContent = run.name;
  const badge = $("#run-state");
  badge.dataset.state = run.state;
  badge.textContent = run.state + (run.reason ? ` · ${run.reason}` : "");
}

async function refreshRunData() {
  const id = encodeURIComponent(app.run.id);
  const [alignment, markers] = await Promise.all([
    app.run.is_reference ? Promise.resolve(null) : api(`/api/runs/${id}/alignment?samples=2000`),
    api(`/api/runs/${id}/markers`),
  ]);
  app.alignment = alignment; app.markers = markers;
  const scrub = $("#scrub");
  scrub.max = String(app.run.duration || 1);
  drawQuality(); drawSplits(); drawMarkers(); drawDelta(); drawScrubMarkers();
  app.ready = true;
}

function fps(which) {
  const media = which === "new" ? app.run.media : app.run.reference_media;
  return (media && media.fps) || 30;
}

function setTime(video, t) {
  programmatic.set(video, t);
  video.currentTime = Math.max(0, t);
}

// Keep the follower where the warp says the leader is.
function follow(reason) {
  if (!app.linked || !app.alignment) return;
  const leader = app.leader === "new" ? V.new : V.ref, follower = app.leader === "new" ? V.ref : V.new;
  const t = app.leader === "new" ? toRef(leader.currentTime) : toNew(leader.currentTime);
  $("#ref-outside").hidden = app.leader !== "new" || t !== null;
  $("#new-outside").hidden = app.leader !== "ref" || t !== null;
  if (t === null) { if (!follower.paused) follower.pause(); return; }
  const drift = follower.currentTime - t;
  if (reason === "seek" || leader.paused) {
    if (Math.abs(drift) > 1e-4) setTime(follower, t);
    if (leader.paused && !follower.paused) follower.pause();
    return;
  }
  // Both play: the follower runs at the warp's local speed, small drift nudged away, big drift seeked.
  const dt = 0.2;
  const ahead = app.leader === "new" ? toRef(leader.currentTime + dt) : toNew(leader.currentTime + dt);
  const slope = ahead !== null ? (ahead - t) / dt : 1;
  if (slope < 0.05) {  // the new rider stands still: the reference waits
    if (!follower.paused) follower.pause();
    if (Math.abs(drift) > 0.05) setTime(follower, t);
    return;
  }
  if (Math.abs(drift) > 0.25) setTime(follower, t);
  follower.playbackRate = Math.min(4, Math.max(0.0625, slope * leader.playbackRate - drift * 2));
  if (follower.paused) follower.play().catch(() => {});
}

function onSeeking(which) {
  const video = V[which];
  const expected = programmatic.get(video);
  if (expected !== undefined && Math.abs(video.currentTime - expected) < 1e-3) { programmatic.delete(video); return; }
  programmatic.delete(video);
  app.leader = which;
  follow("seek");
}

function tick() {
  if (V.new && currentView() === "run") {
    const leader = app.leader === "new" ? V.new : V.ref;
    if (!leader.paused) follow("play");
    $("#new-clock").textContent = fmtClock(V.new.currentTime);
    $("#ref-clock").textContent = fmtClock(V.ref.currentTime);
    const scrub = $("#scrub");
    if (document.activeElement !== scrub) scrub.value = String(V.new.currentTime);
    const r = toRef(V.new.currentTime);
    $("#delta-now").textContent = r === null ? "outside" : `${deltaAt(V.new.currentTime, r) >= 0 ? "+" : ""}${deltaAt(V.new.currentTime, r).toFixed(2)} s`;
    $("#btn-play").textContent = leader.paused ? "Play" : "Pause";
    const now = V.new.currentTime;
    if (Math.abs((app._lastDrawn ?? -1) - now) > 0.05) { app._lastDrawn = now; drawMarkers(); drawDelta(); drawScrubMarkers(); }
  }
  requestAnimationFrame(tick);
}

function deltaAt(tNew, tRef) {
  // Seconds lost (+) or gained (-) since the start of the covered part: the offset of the videos' starts does not count.
  const f = app.alignment.forward;
  return (tNew - f.t_new[0]) - (tRef - f.t_ref[0]);
}

function setupPlayers() {
  V.ref = $("#video-ref"); V.new = $("#video-new");
  for (const which of ["ref", "new"]) {
    const video = V[which];
    video.addEventListener("seeking", () => onSeeking(which));
    video.addEventListener("pause", () => { if (app.leader === which && app.linked) { const other = which === "new" ? V.ref : V.new; other.pause(); other.playbackRate = 1; } });
    video.addEventListener("click", () => togglePlay(which));
  }
  $("#btn-play").addEventListener("click", () => togglePlay(app.leader));
  $$("[data-step]").forEach((b) => b.addEventListener("click", () => step(Number(b.dataset.step))));
  $("#scrub").addEventListener("input", (e) => { app.leader = "new"; V.new.currentTime = Number(e.target.value); });
  $("#link").addEventListener("change", (e) => { app.linked = e.target.checked; if (app.linked) follow("seek"); });
  $("#btn-anchor").addEventListener("click", pinHere);
  $("#btn-add-marker").addEventListener("click", addMarkerHere);
  document.addEventListener("keydown", (e) => {
    if (currentView() !== "run" || e.target.tagName === "INPUT") return;
    if (e.key === " ") { e.preventDefault(); togglePlay(app.leader); }
    if (e.key === ",") step(-1);
    if (e.key === ".") step(1);
  });
  $("#delta-chart").addEventListener("click", (e) => {
    const x = chartX(e, $("#delta-chart"));
    if (x !== null) { app.leader = "new"; V.new.currentTime = x; }
  });
  setupMarkerDrag();
  requestAnimationFrame(tick);
}

function togglePlay(which) {
  const video = V[which];
  app.leader = which;
  if (video.paused) { follow("seek"); video.play().catch(() => {}); } else video.pause();
}

function step(frames) {
  const video = app.leader === "new" ? V.new : V.ref;
  video.pause();
  video.currentTime = Math.max(0, video.currentTime + frames / fps(app.leader));
}

async function pinHere() {
  if (!app.alignment) return;
  try {
    await api(`/api/runs/${encodeURIComponent(app.run.id)}/anchors`, { method: "POST", body: { t_new: V.new.currentTime, t_ref: V.ref.currentTime } });
    toast(`Pinned ${fmtS(V.new.currentTime)} s ↔ ${fmtS(V.ref.currentTime)} s; warp refitted`);
    await refreshRunData();
  } catch (err) { toast(`Pin failed: ${err.message}`, true); }
}

async function addMarkerHere() {
  // The marker goes on the reference run at the reference player's frame (this run's reference, or itself).
  const refId = app.run.is_reference ? app.run.id : app.run.reference_id;
  if (refId === null || refId === undefined) return;
  V.ref.pause();
  const t = V.ref.currentTime;
  const name = (window.prompt(`Name of the marker at ${fmtS(t)} s of the reference`, "") || "").trim();
  if (!name) return;
  try {
    await api(`/api/runs/${encodeURIComponent(refId)}/markers`, { method: "POST", body: { name, t } });
    toast(`Added "${name}" at ${fmtS(t)} s of the reference`);
    await refreshRunData();
  } catch (err) { toast(`Adding the marker failed: ${err.message}`, true); }
}

/* ---- markers ---- */
function confColour(m) {
  if (m.moved) return css("--accent");
  if (m.t_new === null) return css("--bad");
  const threshold = app.alignment ? app.alignment.review_threshold : 0.6;
  return m.confidence >= Math.max(0.8, threshold) ? css("--good") : m.confidence >= threshold ? css("--warn") : css("--bad");
}

async function patchMarker(m, body, message) {
  try {
    await api(`/api/runs/${encodeURIComponent(app.run.id)}/markers/${m.id}`, { method: "PATCH", body });
    toast(message);
    await refreshRunData();
  } catch (err) { toast(`Not saved: ${err.message}`, true); }
}

function drawMarkers() {
  if (!app.markers) return;
  const list = $("#marker-list");
  const now = V.new ? V.new.currentTime : 0;
  const near = app.markers.markers.filter((m) => m.t_new !== null && Math.abs(m.t_new - now) <= 5);
  const unplaced = app.markers.markers.filter((m) => m.t_new === null);
  const key = JSON.stringify([near.map((m) => [m.id, m.t_new, m.reviewed]), unplaced.map((m) => m.id), Math.round(now * 5)]);
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  const frame = 1 / fps("new");
  const row = (m) => el("li", { class: `marker${m.t_new !== null && Math.abs(m.t_new - now) < 0.5 ? " near" : ""}`, "data-marker": m.id, style: `--conf:${confColour(m)}` },
    el("span", { class: "dot", style: `background:${m.colour || css("--muted")}` }),
    el("span", { class: "name", title: m.comment || m.name, onclick: () => { if (m.t_new !== null) { app.leader = "new"; V.new.currentTime = m.t_new; } } }, m.name),
    el("span", { class: "t" }, m.t_new === null ? "not placed" : fmtClock(m.t_new)),
    el("span", { class: "conf" }, m.moved ? "by hand" : `${Math.round(m.confidence * 100)}%`),
    app.run.is_reference ? null : el("div", { class: "tools" },
      m.t_new === null ? null : el("button", { class: "btn small", "data-nudge": "-1", title: "one frame earlier", onclick: () => patchMarker(m, { t_new: Math.max(0, m.t_new - frame) }, `${m.name}: one frame earlier`) }, "−1f"),
      m.t_new === null ? null : el("button", { class: "btn small", "data-nudge": "1", title: "one frame later", onclick: () => patchMarker(m, { t_new: m.t_new + frame }, `${m.name}: one frame later`) }, "+1f"),
      el("button", { class: "btn small", title: "put the marker at the new run's playhead", onclick: () => patchMarker(m, { t_new: V.new.currentTime }, `${m.name} moved to ${fmtClock(V.new.currentTime)}`) }, "to playhead"),
      el("button", { class: "btn small", title: "mark as checked", onclick: () => patchMarker(m, { reviewed: !m.reviewed }, m.reviewed ? "review undone" : `${m.name} reviewed`) }, m.reviewed ? "✓ reviewed" : "mark reviewed"),
      m.t_new === null ? null : el("button", { class: "btn small", title: "pin the warp: this marker's new time is its reference time", onclick: async () => {
        try { await api(`/api/runs/${encodeURIComponent(app.run.id)}/anchors`, { method: "POST", body: { t_new: m.t_new, t_ref: m.t_ref } }); toast(`Warp pinned at ${m.name}`); await refreshRunData(); } catch (err) { toast(err.message, true); }
      } }, "pin"),
      m.needs_review && !m.reviewed ? el("span", { class: "flags" }, "needs review") : null,
    ));
  const items = [...near.map(row), ...unplaced.map(row)];
  list.replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No markers within 5 s of the playhead.")]));
}

/* Markers as ticks under the scrub bar: drag one to move it. */
function drawScrubMarkers() {
  const canvas = $("#scrub-markers");
  if (!app.markers || !canvas) return;
  const { ctx, w, h } = fitCanvas(canvas);
  const dur = app.run.duration || 1;
  for (const m of app.markers.markers) {
    if (m.t_new === null) continue;
    const t = app._drag && app._drag.m.id === m.id ? app._drag.t : m.t_new;
    ctx.fillStyle = confColour(m);
    ctx.fillRect((t / dur) * w - 1.5, 0, 3, h);
  }
}

function setupMarkerDrag() {
  const canvas = $("#scrub-markers");
  const timeAt = (e) => Math.min(app.run.duration, Math.max(0, ((e.clientX - canvas.getBoundingClientRect().left) / canvas.clientWidth) * app.run.duration));
  canvas.addEventListener("pointerdown", (e) => {
    if (!app.markers || app.run.is_reference) return;
    const t = timeAt(e), tolerance = (6 / canvas.clientWidth) * app.run.duration;
    const hit = app.markers.markers.filter((m) => m.t_new !== null).sort((a, b) => Math.abs(a.t_new - t) - Math.abs(b.t_new - t))[0];
    if (!hit || Math.abs(hit.t_new - t) > tolerance) return;
    app._drag = { m: hit, t: hit.t_new };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!app._drag) return;
    app._drag.t = timeAt(e);
    app.leader = "new"; V.new.currentTime = app._drag.t;
    drawScrubMarkers();
  });
  canvas.addEventListener("pointerup", () => {
    if (!app._drag) return;
    const { m, t } = app._drag;
    app._drag = null;
    if (Math.abs(t - m.t_new) > 1e-3) patchMarker(m, { t_new: t }, `${m.name} moved to ${fmtClock(t)}`);
  });
}

/* ---- the time-delta curve ---- */
function chartX(e, canvas) {
  const g = canvas._geom;
  if (!g) return null;
  const x = e.clientX - canvas.getBoundingClientRect().left;
  return g.x0 + ((x - g.left) / g.width) * (g.x1 - g.x0);
}

function drawDelta() {
  const canvas = $("#delta-chart");
  const { ctx, w, h } = fitCanvas(canvas);
  const a = app.alignment;
  if (!a || !a.forward.t_new.length) {
    ctx.fillStyle = css("--muted"); ctx.font = "12px sans-serif";
    ctx.fillText(a ? "Not aligned: no covered part." : "The reference run is what others are compared to.", 10, h / 2);
    return;
  }
  const xs = a.forward.t_new, ds = xs.map((t, i) => deltaAt(t, a.forward.t_ref[i]));
  const left = 44, right = 8, top = 10, bottom = 20, width = w - left - right, height = h - top - bottom;
  const x0 = 0, x1 = app.run.duration || xs[xs.length - 1];
  let lo = Math.min(0, ...ds), hi = Math.max(0, ...ds);
  if (hi - lo < 0.5) { hi += 0.25; lo -= 0.25; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const X = (x) => left + ((x - x0) / (x1 - x0)) * width, Y = (y) => top + (1 - (y - lo) / (hi - lo)) * height;
  canvas._geom = { left, width, x0, x1 };
  // Low-confidence stretches
  ctx.fillStyle = css("--shade");
  for (const [s, e] of a.low_confidence) ctx.fillRect(X(s), top, Math.max(1, X(e) - X(s)), height);
  // Axes and grid
  ctx.strokeStyle = css("--line"); ctx.lineWidth = 1; ctx.fillStyle = css("--muted"); ctx.font = "10px sans-serif";
  const stepY = niceStep((hi - lo) / 4);
  for (let y = Math.ceil(lo / stepY) * stepY; y <= hi; y += stepY) {
    ctx.beginPath(); ctx.moveTo(left, Y(y) + 0.5); ctx.lineTo(w - right, Y(y) + 0.5); ctx.stroke();
    ctx.fillText(`${y > 0 ? "+" : ""}${y.toFixed(stepY < 1 ? 1 : 0)} s`, 4, Y(y) + 3);
  }
  const stepX = niceStep((x1 - x0) / 8);
  for (let x = 0; x <= x1; x += stepX) ctx.fillText(`${x.toFixed(0)}s`, X(x) - 6, h - 5);
  ctx.strokeStyle = css("--muted"); ctx.setLineDash([3, 3]);
  ctx.beginPath(); ctx.moveTo(left, Y(0) + 0.5); ctx.lineTo(w - right, Y(0) + 0.5); ctx.stroke(); ctx.setLineDash([]);
  ctx.fillText("behind ↑  ahead ↓", left + 4, top + 9);
  // The curve
  ctx.beginPath();
  xs.forEach((x, i) => (i ? ctx.lineTo(X(x), Y(ds[i])) : ctx.moveTo(X(x), Y(ds[i]))));
  ctx.strokeStyle = css("--accent"); ctx.lineWidth = 2; ctx.stroke();
  // Anchors and markers
  for (const an of a.anchors) { ctx.fillStyle = css("--info"); ctx.beginPath(); ctx.arc(X(an.t_new), Y(deltaAt(an.t_new, an.t_ref)), 4, 0, 7); ctx.fill(); }
  if (app.markers) for (const m of app.markers.markers) {
    if (m.t_new === null) continue;
    ctx.fillStyle = confColour(m);
    ctx.fillRect(X(m.t_new) - 1, top + height - 8, 2, 8);
  }
  // Playhead
  if (V.new) {
    ctx.strokeStyle = css("--text"); ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(X(V.new.currentTime) + 0.5, top); ctx.lineTo(X(V.new.currentTime) + 0.5, top + height); ctx.stroke();
  }
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-6)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

/* ---- splits, quality ---- */
function drawSplits() {
  const body = $("#splits tbody");
  const splits = app.markers ? app.markers.splits : [];
  body.replaceChildren(...(splits.length ? splits.map((s) => el("tr", {},
    el("td", {}, s.start), el("td", {}, s.end),
    el("td", { class: "num" }, `${s.new_s.toFixed(2)} s`), el("td", { class: "num" }, `${s.ref_s.toFixed(2)} s`),
    el("td", { class: `num ${s.delta_s < 0 ? "faster" : s.delta_s > 0 ? "slower" : ""}` }, `${s.delta_s > 0 ? "+" : ""}${s.delta_s.toFixed(2)} s`),
  )) : [el("tr", {}, el("td", { colspan: 5, class: "empty" }, "Splits need two placed markers."))]));
}

function drawQuality() {
  const a = app.alignment, box = $("#quality"), verdict = $("#quality-verdict");
  if (!a) { box.replaceChildren(); verdict.textContent = ""; fitCanvas($("#hist-chart")); return; }
  verdict.className = a.ok ? "verdict-ok" : "verdict-bad";
  verdict.textContent = a.ok ? "aligned" : `not aligned: ${a.reason}`;
  const m = a.metrics || {};
  const rows = [
    ["coverage", a.coverage !== null ? `${(a.coverage * 100).toFixed(1)} % of the new run` : "–"],
    ["covered (new)", a.new_range ? `${fmtS(a.new_range[0], 2)}–${fmtS(a.new_range[1], 2)} s` : "–"],
    ["covered (ref)", a.ref_range ? `${fmtS(a.ref_range[0], 2)}–${fmtS(a.ref_range[1], 2)} s` : "–"],
    ["residual p50 / p90", a.residuals_ms.p50 !== undefined ? `${a.residuals_ms.p50} / ${a.residuals_ms.p90} ms` : "–"],
    ["mean confidence", m.mean_confidence !== undefined && m.mean_confidence !== null ? Number(m.mean_confidence).toFixed(2) : "–"],
    ["anchors", String(a.anchors.length)],
  ];
  box.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  // Confidence histogram
  const { ctx, w, h } = fitCanvas($("#hist-chart"));
  const counts = a.histogram.counts, most = Math.max(1, ...counts), bw = (w - 20) / counts.length;
  counts.forEach((c, i) => {
    const lo = a.histogram.edges[i];
    ctx.fillStyle = lo >= 0.8 ? css("--good") : lo >= a.review_threshold ? css("--warn") : css("--bad");
    const bh = (c / most) * (h - 26);
    ctx.fillRect(10 + i * bw + 2, h - 14 - bh, bw - 4, bh);
  });
  ctx.fillStyle = css("--muted"); ctx.font = "10px sans-serif";
  ctx.fillText("0", 10, h - 2); ctx.fillText("confidence", w / 2 - 24, h - 2); ctx.fillText("1", w - 16, h - 2);
}

/* ---- routing ---- */
function currentView() {
  return $("#view-run").hidden ? ($("#view-runs").hidden ? "other" : "runs") : "run";
}

async function route() {
  // The printed URL pasted into an open tab: a hash change, not a new page; trade the token first.
  if (location.hash.startsWith("#token=")) await startSession();
  const hash = location.hash || "#/";
  const match = hash.match(/^#\/run\/(.+)$/);
  for (const v of $$(".view")) v.hidden = true;
  try {
    if (match) {
      $("#view-run").hidden = false;
      app.ready = false;
      await showRun(decodeURIComponent(match[1]));
    } else {
      if (V.new) { V.new.pause(); V.ref.pause(); }
      app.run = null;
      $("#view-runs").hidden = false;
      await showRuns();
    }
  } catch (err) {
    for (const v of $$(".view")) v.hidden = true;
    $("#view-error").hidden = false;
    $("#error-text").textContent = err.message;
  }
}

async function start() {
  await startSession();
  try {
    const health = await api("/api/health");
    $("#mode").textContent = health.mode === "preview" ? "preview" : "library";
    app.runs = await api("/api/runs");
  } catch (err) { toast(`API unreachable: ${err.message}`, true); }
  setupPlayers();
  connectEvents();
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => { if (currentView() === "runs") drawTelemetry(); else if (app.run) { drawDelta(); drawQuality(); drawScrubMarkers(); } });
  await route();
}

start();
