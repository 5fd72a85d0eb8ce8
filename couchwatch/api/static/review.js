// couchwatch review page: the queue of incidents (an entity's anomalies close in time), one
// incident in detail (its reasons, its anomalies, the timeline) and the review buttons, which
// review the incident and all its anomalies. Plain ES module, no dependencies. Everything comes
// from the /v1 API with the analyst's key.

const KEY_STORAGE = "couchwatch.apiKey";
const KEY_HEADER = "X-API-Key";
const SVG_NS = "http://www.w3.org/2000/svg";
const SEVERITY_RANK = { high: 3, medium: 2, low: 1 };

const $ = (id) => document.getElementById(id);
const state = { rows: [], cursor: null, selected: null, loading: false, seq: 0 };

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function anomalyId(a) {
  return a.id ?? a._id;
}

function firstReason(a) {
  const r = (a.reasons || [])[0];
  if (!r) return "";
  return typeof r === "string" ? r : r.text || r.summary || "";
}

function fmtSpan(a) {
  const start = a.start || a.window_start;
  const end = a.end || a.window_end;
  if (!end || end === start) return fmtWhen(start);
  const sameDay = String(start).slice(0, 10) === String(end).slice(0, 10);
  const tail = sameDay ? new Date(end).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : fmtWhen(end);
  return `${fmtWhen(start)} – ${tail}`;
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function fmtWhen(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

// Scores are calibrated tail probabilities: the interesting part is how many 9s they have.
function fmtScore(x) {
  if (typeof x !== "number") return "–";
  if (x < 0.99) return x.toFixed(3);
  if (x >= 1) return "1.000000";
  return x.toFixed(Math.min(9, Math.floor(-Math.log10(1 - x)) + 2));
}

// "Surprise": -log10 of the tail probability (0.9999 → 4); the chart's score axis.
const MAX_SURPRISE = 9;
function surprise(x) {
  return Math.min(MAX_SURPRISE, -Math.log10(Math.max(1 - Number(x), 10 ** -MAX_SURPRISE)));
}

function oneIn(level) {
  const n = 10 ** level;
  if (n >= 1e6) return `1 in ${n / 1e6}M`;
  if (n >= 1e3) return `1 in ${n / 1e3}k`;
  return `1 in ${n}`;
}

function say(text, kind = "info") {
  const box = $("status");
  box.textContent = text;
  box.dataset.kind = kind;
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const key = apiKey();
  if (!key) throw new ApiError(401, "enter an API key first");
  const headers = { [KEY_HEADER]: key, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin", cache: "no-store",
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const detail = data && (typeof data.detail === "string" ? data.detail
      : data.detail ? JSON.stringify(data.detail) : data.error);
    const hint = res.status === 401 ? "the API key was not accepted"
      : res.status === 403 ? "this key lacks the scope for that" : `HTTP ${res.status}`;
    throw new ApiError(res.status, detail ? `${hint}: ${detail}` : hint);
  }
  return data;
}

function listOf(data, ...names) {
  if (Array.isArray(data)) return data;
  for (const n of names) if (data && Array.isArray(data[n])) return data[n];
  return [];
}

// ---------------------------------------------------------------- queue

function filterQuery(cursor) {
  const q = new URLSearchParams();
  const sev = $("f-severity").value;
  const status = $("f-status").value;
  const entity = $("f-entity").value.trim();
  if (sev) q.set("severity", sev);
  if (status) q.set("status", status);
  if (entity) q.set("entity", entity);
  q.set("limit", "50");
  if (cursor) q.set("cursor", cursor);
  return q.toString();
}

async function loadQueue({ more = false } = {}) {
  if (more && state.loading) return;
  const seq = ++state.seq; // the newest request wins; answers to older ones are dropped
  state.loading = true;
  $("queue-table").setAttribute("aria-busy", "true");
  try {
    const data = await api(`/v1/incidents?${filterQuery(more ? state.cursor : null)}`);
    if (seq !== state.seq) return;
    const items = listOf(data, "items", "incidents", "results");
    state.rows = more ? state.rows.concat(items) : items;
    state.cursor = (data && (data.next_cursor ?? data.cursor)) || null;
    renderQueue();
    if (!more) say(`${plural(state.rows.length, "incident", "incidents")} loaded`);
  } catch (err) {
    if (seq !== state.seq) return;
    state.rows = [];
    state.cursor = null;
    renderQueue(err.message);
    say(err.message, "error");
  } finally {
    if (seq === state.seq) {
      state.loading = false;
      $("queue-table").removeAttribute("aria-busy");
    }
  }
}

function sortRows(rows) {
  return rows.slice().sort((a, b) =>
    (SEVERITY_RANK[b.severity] || 0) - (SEVERITY_RANK[a.severity] || 0)
    || (b.score || 0) - (a.score || 0)
    || String(b.start).localeCompare(String(a.start)));
}

function renderQueue(error) {
  const body = $("queue-body");
  body.replaceChildren();
  state.rows = sortRows(state.rows);
  for (const a of state.rows) {
    const id = anomalyId(a);
    const tr = el("tr", {
      tabindex: 0, "data-id": id, class: "row",
      "aria-selected": state.selected && anomalyId(state.selected) === id ? "true" : "false",
      "aria-label": `${a.severity || "unrated"} incident, ${a.entity}, score ${fmtScore(a.score)}, `
        + plural(a.n_anomalies || 0, "anomaly", "anomalies"),
    },
    el("td", {}, el("span", { class: `sev sev-${a.severity || "none"}`, text: a.severity || "–" })),
    el("td", { class: "num", text: fmtScore(a.score) }),
    el("td", { class: "entity", text: a.entity }),
    el("td", { class: "when" }, el("time", { datetime: a.start, text: fmtSpan(a) })),
    el("td", { class: "num n-anomalies", text: a.n_anomalies ?? "" }),
    el("td", { class: "reason" }, el("div", { class: "clamp", text: firstReason(a), title: firstReason(a) })));
    tr.addEventListener("click", () => openIncident(id));
    tr.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        openIncident(id);
      }
    });
    body.append(tr);
  }
  const empty = $("queue-empty");
  empty.hidden = state.rows.length > 0;
  empty.textContent = error ? `Could not load the queue: ${error}`
    : apiKey() ? "Nothing matches these filters. 🎉" : "Enter an API key to load the queue.";
  $("queue-count").textContent = state.rows.length ? `${state.rows.length}${state.cursor ? "+" : ""}` : "";
  $("load-more").hidden = !state.cursor;
}

function moveInQueue(step) {
  const rows = [...document.querySelectorAll("#queue-body tr")];
  if (!rows.length) return;
  let i = rows.indexOf(document.activeElement);
  if (i < 0) i = rows.findIndex((r) => r.getAttribute("aria-selected") === "true");
  const next = rows[Math.min(rows.length - 1, Math.max(0, i < 0 ? 0 : i + step))];
  next.focus();
  next.scrollIntoView({ block: "nearest" });
  openIncident(next.dataset.id, { focusDetail: false });
}

// ---------------------------------------------------------------- one incident

async function openIncident(id, { focusDetail = true } = {}) {
  let incident;
  try {
    incident = await api(`/v1/incidents/${encodeURIComponent(id)}`);
  } catch (err) {
    say(`Could not open the incident: ${err.message}`, "error");
    return;
  }
  incident = incident.incident || incident;
  state.selected = incident;
  for (const tr of document.querySelectorAll("#queue-body tr")) {
    tr.setAttribute("aria-selected", tr.dataset.id === id ? "true" : "false");
  }
  renderDetail(incident);
  if (focusDetail) $("detail-heading").focus();
  const entity = encodeURIComponent(incident.entity);
  const [since, until] = timelineRange(incident);
  const q = new URLSearchParams({ since, until }).toString();
  const [profile, timeline] = await Promise.allSettled([
    api(`/v1/entities/${entity}`),
    api(`/v1/entities/${entity}/timeline?${q}`),
  ]);
  if (state.selected !== incident) return; // another row was opened meanwhile
  if (profile.status === "fulfilled") renderProfile(profile.value);
  else $("detail-profile").replaceChildren(el("p", { class: "empty", text: profile.reason.message }));
  if (timeline.status === "fulfilled") renderTimeline(timeline.value, incident, since, until);
  else $("timeline-chart").replaceChildren(el("p", { class: "empty", text: timeline.reason.message }));
}

function timelineRange(a) {
  const start = new Date(a.start || a.window_start || Date.now());
  const end = new Date(a.end || a.window_end || a.start || Date.now());
  const since = new Date(start.getTime() - 3 * 24 * 3600e3);
  const until = new Date(end.getTime() + 24 * 3600e3);
  return [since.toISOString(), until.toISOString()];
}

function renderDetail(a) {
  $("detail-empty").hidden = true;
  $("detail-body").hidden = false;
  const heading = $("detail-heading");
  heading.textContent = `${a.entity} · ${a.severity || "unrated"} · score ${fmtScore(a.score)}`;
  heading.setAttribute("tabindex", "-1");
  const members = a.anomalies || [];
  $("detail-meta").textContent = `${fmtSpan(a)} · `
    + `${plural(a.n_anomalies ?? members.length, "anomaly", "anomalies")} · `
    + `${(a.detectors || []).join(", ") || "detector"}`;
  const review = a.review || { status: "open" };
  const badge = $("detail-review");
  badge.textContent = review.status;
  badge.className = `review-badge review-${review.status}`;
  const reasons = $("detail-reasons");
  reasons.replaceChildren();
  for (const r of a.reasons || []) {
    const text = typeof r === "string" ? r : r.text || JSON.stringify(r);
    reasons.append(el("li", {}, text));
  }
  if (!(a.reasons || []).length) reasons.append(el("li", { class: "empty", text: "no reasons recorded" }));
  renderMembers(members);
  $("profile-entity").textContent = a.entity;
  $("detail-profile").replaceChildren(el("p", { class: "empty", text: "loading…" }));
  $("timeline-chart").replaceChildren(el("p", { class: "empty", text: "loading…" }));
  $("timeline-caption").replaceChildren();
  $("review-note").value = "";
  renderPastReview(review);
}

// The incident's anomalies, earliest first: when, detector, score and all their reasons.
function renderMembers(members) {
  const list = $("detail-anomalies");
  list.replaceChildren();
  $("anomalies-count").textContent = `(${members.length})`;
  for (const m of members) {
    const why = el("ul", {}, (m.reasons || []).map((r) =>
      el("li", { text: typeof r === "string" ? r : r.text || JSON.stringify(r) })));
    list.append(el("li", { "data-id": anomalyId(m) },
      el("p", { class: "meta" },
        el("time", { datetime: m.window_start, text: fmtSpan(m) }),
        ` · ${m.detector || "detector"} · `,
        el("span", { class: `sev sev-${m.severity || "none"}`, text: m.severity || "–" }),
        ` score ${fmtScore(m.score)}`),
      why));
  }
  if (!members.length) list.append(el("li", { class: "empty", text: "no anomalies found" }));
}

function renderPastReview(review) {
  const past = $("review-past");
  if (review && review.status && review.status !== "open") {
    past.textContent = `Reviewed ${review.status}${review.by ? ` by ${review.by}` : ""}`
      + `${review.at ? ` on ${fmtWhen(review.at)}` : ""}${review.note ? `: “${review.note}”` : ""}`;
  } else {
    past.textContent = "Not reviewed yet.";
  }
}

function round(x) {
  return Math.abs(x) >= 100 ? Math.round(x) : Math.round(x * 100) / 100;
}

function hourRanges(hours) {
  const hs = hours.map(Number).sort((a, b) => a - b);
  const parts = [];
  for (let i = 0; i < hs.length; i++) {
    let j = i;
    while (j + 1 < hs.length && hs[j + 1] === hs[j] + 1) j++;
    const pad = (h) => String(h).padStart(2, "0");
    parts.push(i === j ? `${pad(hs[i])}h` : `${pad(hs[i])}–${pad(hs[j] + 1)}h`);
    i = j;
  }
  return parts.length ? `${parts.join(", ")} UTC` : "–";
}

function describeValue(v) {
  if (v === null || v === undefined || v === "") return "–";
  if (Array.isArray(v)) {
    return v.map((x) => {
      if (x && typeof x === "object" && "value" in x) {
        return typeof x.share === "number" ? `${x.value} ${Math.round(x.share * 100)}%` : String(x.value);
      }
      return typeof x === "object" && x !== null ? Object.values(x).join(" ") : String(x);
    }).join(", ") || "–";
  }
  if (typeof v === "object") {
    return Object.entries(v).map(([k, x]) => `${label(k)} ${typeof x === "number" ? round(x) : describeValue(x)}`)
      .join(", ") || "–";
  }
  if (typeof v === "string" && /^\d{4}-\d\d-\d\dT/.test(v)) return fmtWhen(v);
  return typeof v === "number" ? String(round(v)) : String(v);
}

function label(k) {
  return k.replace(/_utc$/, "").replace(/_/g, " ");
}

// The profile keys a person reads first; anything else the API adds is shown after them.
const PROFILE_ORDER = ["countries", "cities", "devices", "os", "browsers", "usual_hours_utc",
  "events_per_active_day", "types", "endpoints", "median_bytes_sent", "median_latency_ms"];
const PROFILE_SKIP = new Set(["hours_utc", "events_read", "first", "last"]);

function renderProfile(data) {
  const dl = $("detail-profile");
  dl.replaceChildren();
  const profile = data.profile || data.usual || data.usual_profile || {};
  const keys = [...PROFILE_ORDER.filter((k) => k in profile),
    ...Object.keys(profile).filter((k) => !PROFILE_ORDER.includes(k) && !PROFILE_SKIP.has(k))];
  for (const k of keys) {
    const v = profile[k];
    const text = k === "usual_hours_utc" && Array.isArray(v) ? hourRanges(v) : describeValue(v);
    dl.append(el("dt", { text: k === "usual_hours_utc" ? "usual hours" : label(k) }),
      el("dd", { text }));
  }
  if (profile.first && profile.last) {
    dl.append(el("dt", { text: "from" }), el("dd", {
      text: `${profile.events_read ?? "?"} recent events, ${fmtWhen(profile.first)} – ${fmtWhen(profile.last)}` }));
  }
  const model = data.model || {};
  const versions = listOf(model.versions, "items");
  if (model.active_version !== undefined && model.active_version !== null) {
    const meta = model.meta || {};
    const trained = (meta.training_window || {}).end;
    const thr = meta.thresholds || {};
    const thrText = Object.entries(thr).filter(([k]) => k === "combined" || k === "novelty")
      .map(([k, v]) => `${k} ${fmtScore(v)}`).join(", ");
    dl.append(el("dt", { text: "model" }), el("dd", {
      text: `version ${model.active_version} of ${versions.length || 1}`
        + `${trained ? `, history to ${fmtWhen(trained)}` : ""}`
        + `${meta.cold_start ? " (cold start: scored against the population)" : ""}` }));
    if (thrText) dl.append(el("dt", { text: "thresholds" }), el("dd", { text: thrText }));
  }
  if (!dl.children.length) dl.append(el("p", { class: "empty", text: "no profile yet (not trained)" }));
}

// ---------------------------------------------------------------- timeline chart

function renderTimeline(data, incident, since, until) {
  const box = $("timeline-chart");
  box.replaceChildren();
  const members = incident.anomalies || [];
  const currentIds = new Set(incident.anomaly_ids || members.map(anomalyId));
  // thresholds and the score line follow the incident's highest-scoring anomaly
  const current = members.reduce((best, m) => ((m.score || 0) > (best.score || 0) ? m : best),
    members[0] || incident);
  const windows = listOf(data.windows ?? data.activity, "items").map((w) => ({
    t: new Date(w.window_start || w.start).getTime(),
    n: Number(w.events ?? w.count ?? w.n_events ?? 0),
  })).filter((w) => !Number.isNaN(w.t));
  const anomalies = listOf(data.anomalies, "items").map((a) => ({
    id: anomalyId(a), t: new Date(a.window_start).getTime(),
    t1: new Date(a.window_end || a.window_start).getTime(), detector: a.detector,
    score: Number(a.score), severity: a.severity, review: (a.review || {}).status || "open",
  })).filter((a) => !Number.isNaN(a.t));
  const reviews = listOf(data.reviews ?? data.past_reviews, "items").map((r) => ({
    t: new Date(r.window_start || r.at).getTime(), status: r.status || (r.review || {}).status,
    note: r.note || "", current: currentIds.has(r.anomaly_id),
  })).filter((r) => !Number.isNaN(r.t));
  const thresholds = data.thresholds || {};
  const threshold = typeof thresholds[current.detector] === "number" ? thresholds[current.detector]
    : typeof data.threshold === "number" ? data.threshold : current.threshold;

  const t0 = new Date(data.since || since).getTime();
  const t1 = new Date(data.until || until).getTime();
  const W = 820; const H = 250;
  const m = { l: 50, r: 84, t: 24, b: 28 };
  const iw = W - m.l - m.r; const ih = H - m.t - m.b;
  const x = (t) => m.l + ((Math.min(t1, Math.max(t0, t)) - t0) / Math.max(1, t1 - t0)) * iw;
  const maxN = Math.max(1, ...windows.map((w) => w.n));
  const yN = (n) => m.t + ih - (n / maxN) * ih;
  const top = Math.min(MAX_SURPRISE, Math.max(
    Math.ceil(surprise(threshold ?? 0.99)) + 2, ...anomalies.map((a) => Math.ceil(surprise(a.score)))));
  const yS = (s) => m.t + ih - (surprise(s) / top) * ih;
  const yLevel = (lv) => m.t + ih - (lv / top) * ih;

  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, role: "img", class: "timeline",
    "aria-labelledby": "timeline-title timeline-desc",
  });
  root.append(svg("desc", { id: "timeline-desc" }, `${incident.entity}: ${windows.length} active `
    + `15-minute windows from ${fmtWhen(t0)} to ${fmtWhen(t1)}, ${anomalies.length} flagged, `
    + `threshold ${fmtScore(threshold)}, ${reviews.length} past review(s)`));

  // grid on the score axis: how rare (1 in 10, 100, …), log scale
  const step = top > 6 ? 2 : 1;
  for (let lv = 0; lv <= top; lv += step) {
    root.append(svg("line", { x1: m.l, x2: W - m.r, y1: yLevel(lv), y2: yLevel(lv), class: "grid" }));
    if (lv > 0) root.append(svg("text", { x: W - m.r + 6, y: yLevel(lv) + 4, class: "tick" }, oneIn(lv)));
  }
  // flagged windows: shaded bands (the opened one stands out)
  for (const a of anomalies) {
    const xa = x(a.t); const xb = Math.max(xa + 4, x(a.t1));
    const band = svg("rect", {
      x: xa - 2, y: m.t, width: xb - xa + 4, height: ih,
      class: `band band-${a.severity || "low"}${currentIds.has(a.id) ? " band-current" : ""}`,
    });
    band.append(svg("title", {}, `flagged ${a.severity || ""} (${a.detector}) at ${fmtWhen(a.t)}`));
    root.append(band);
  }
  // day ticks
  const days = Math.max(1, Math.round((t1 - t0) / 86400e3));
  const every = days > 10 ? Math.ceil(days / 8) : 1;
  const first = new Date(t0); first.setUTCHours(0, 0, 0, 0);
  for (let d = first.getTime() + 86400e3; d < t1; d += every * 86400e3) {
    root.append(svg("line", { x1: x(d), x2: x(d), y1: m.t, y2: m.t + ih + 4, class: "day" }));
    root.append(svg("text", { x: x(d), y: H - 8, class: "tick mid" },
      new Date(d).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" })));
  }
  root.append(svg("line", { x1: m.l, x2: W - m.r, y1: m.t + ih, y2: m.t + ih, class: "axis" }));
  root.append(svg("text", { x: m.l - 6, y: m.t - 10, class: "tick end" }, "events"));
  root.append(svg("text", { x: W - m.r + 6, y: m.t - 10, class: "tick" }, "score (rarity)"));
  root.append(svg("text", { x: m.l - 6, y: yN(maxN) + 4, class: "tick end" }, String(maxN)));
  root.append(svg("text", { x: m.l - 6, y: yN(0) + 4, class: "tick end" }, "0"));
  // activity per window
  const barW = Math.max(1.5, Math.min(8, (iw / Math.max(1, (t1 - t0) / 900e3)) * 0.9));
  for (const w of windows) {
    const bar = svg("rect", { x: x(w.t) - barW / 2, y: yN(w.n), width: barW,
      height: Math.max(1, m.t + ih - yN(w.n)), class: "bar" });
    bar.append(svg("title", {}, `${w.n} event(s) in the window at ${fmtWhen(w.t)}`));
    root.append(bar);
  }
  // threshold
  if (typeof threshold === "number") {
    root.append(svg("line", { x1: m.l, x2: W - m.r, y1: yS(threshold), y2: yS(threshold),
      class: "threshold" }));
    root.append(svg("text", { x: m.l + 4, y: yS(threshold) - 5, class: "tick thr" },
      `threshold (${current.detector || "score"}) ${fmtScore(threshold)}`));
  }
  // score line through the scored items, one per detector kind
  const kinds = [...new Set(anomalies.map((a) => a.detector))];
  for (const kind of kinds) {
    const pts = anomalies.filter((a) => a.detector === kind).sort((p, q) => p.t - q.t);
    if (pts.length > 1) {
      root.append(svg("polyline", {
        points: pts.map((p) => `${x(p.t).toFixed(1)},${yS(p.score).toFixed(1)}`).join(" "),
        class: `score-line${kind === current.detector ? "" : " score-other"}`,
      }));
    }
  }
  for (const a of anomalies) {
    const here = currentIds.has(a.id);
    const dot = svg("circle", { cx: x(a.t), cy: yS(a.score), r: here ? 6 : 4,
      class: `dot dot-${a.severity || "low"}${here ? " dot-current" : ""}` });
    dot.append(svg("title", {}, `score ${fmtScore(a.score)} (${a.severity || "–"}, ${a.detector}, ${a.review})`));
    root.append(dot);
  }
  // past reviews: markers along the top
  for (const r of reviews) {
    const g = svg("g", { class: `review-mark review-mark-${r.status}` });
    g.append(svg("text", { x: x(r.t), y: m.t - 8, class: "mark mid" }, r.status === "confirmed" ? "▲" : "●"));
    g.append(svg("title", {}, `${r.status} ${fmtWhen(r.t)}${r.note ? `: ${r.note}` : ""}`));
    root.append(g);
  }
  box.append(root);
  $("timeline-caption").replaceChildren(
    el("span", { class: "key key-bar" }, "events per 15-minute window"),
    el("span", { class: "key key-score" }, "score (log scale of rarity)"),
    el("span", { class: "key key-thr" }, "threshold"),
    el("span", { class: "key key-band" }, "flagged window (this incident's stand out)"),
    el("span", { class: "key key-rev" }, "past review (● dismissed, ▲ confirmed)"),
  );
}

// ---------------------------------------------------------------- review

async function submitReview(status) {
  const a = state.selected;
  if (!a) return;
  const note = $("review-note").value.trim();
  const buttons = document.querySelectorAll("#review-form button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const res = await api(`/v1/incidents/${encodeURIComponent(anomalyId(a))}/review`, {
      method: "POST", body: { status, note },
    });
    const updated = (res && (res.incident || (res.review ? res : null))) || null;
    a.review = (updated && updated.review) || { status, note };
    $("detail-review").textContent = a.review.status;
    $("detail-review").className = `review-badge review-${a.review.status}`;
    renderPastReview(a.review);
    const n = (updated && updated.anomaly_ids ? updated.anomaly_ids : a.anomaly_ids || []).length;
    say(`${a.entity}: incident ${status} with its ${plural(n, "anomaly", "anomalies")}. `
      + "The next training learns from them.", "ok");
    const filter = $("f-status").value;
    const idx = state.rows.findIndex((r) => anomalyId(r) === anomalyId(a));
    if (idx >= 0) {
      if (filter && filter !== status) state.rows.splice(idx, 1);
      else state.rows[idx].review = a.review;
    }
    renderQueue();
  } catch (err) {
    say(`Review not saved: ${err.message}`, "error");
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

// ---------------------------------------------------------------- wiring

function init() {
  const keyInput = $("api-key");
  keyInput.value = apiKey();
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = keyInput.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    loadQueue();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    keyInput.value = "";
    state.rows = [];
    renderQueue();
    say("Key forgotten.");
  });
  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadQueue();
  });
  for (const id of ["f-severity", "f-status"]) $(id).addEventListener("change", () => loadQueue());
  $("load-more").addEventListener("click", () => loadQueue({ more: true }));
  $("review-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const status = ev.submitter ? ev.submitter.value : "dismissed";
    submitReview(status);
  });
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement
      || t instanceof HTMLSelectElement) return;
    if (ev.key === "j") { ev.preventDefault(); moveInQueue(1); }
    if (ev.key === "k") { ev.preventDefault(); moveInQueue(-1); }
  });
  renderQueue();
  if (apiKey()) loadQueue();
}

init();
