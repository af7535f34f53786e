// QTasks dashboard: one vanilla ES2020 script, no dependencies, no build step.
// The contract with the server is docs/dashboard.md ("JSON API"). Every string from
// the API is put in the DOM as text (textContent / text nodes / attributes
// through setAttribute), never as HTML.
"use strict";
(() => {
  // ---------------------------------------------------------------- basics

  const BASE = (() => {
    const meta = document.querySelector('meta[name="qtasks-base"]');
    let base = meta ? meta.getAttribute("content") || "" : "";
    if (base === "{{BASE}}") base = ""; // served without substitution
    return base.replace(/\/+$/, "");
  })();
  const PAGE_SIZE = 50;
  const OVERVIEW_TASKS = 20;
  const TASK_STATUSES = ["new", "process", "retry", "success", "error", "cancel"];
  const WORKFLOW_STATUSES = ["process", "success", "error", "cancel"];
  const WORKFLOW_MEMBERS = 50;
  const WORKFLOW_MAX_MEMBERS = 1000;
  const WORKERS_REFRESH_MS = 5000;

  const $ = (sel, root = document) => root.querySelector(sel);

  // Control characters (and bidi overrides) shown as \u{1B}, like the CLI;
  // newlines and tabs are kept (tracebacks).
  const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g;
  function clean(value) {
    return String(value).replace(CONTROL, (c) => "\\u{" + c.charCodeAt(0).toString(16).toUpperCase() + "}");
  }

  // h("td", {class: "x", dataset: {uuid}, onclick: fn}, "text", node, [more])
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value == null || value === false) continue;
        if (key === "class") el.className = value;
        else if (key === "dataset") {
          for (const [k, v] of Object.entries(value)) if (v != null) el.dataset[k] = String(v);
        } else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
        else if (key === "title") el.title = clean(value);
        else el.setAttribute(key, value === true ? "" : String(value));
      }
    }
    append(el, kids);
    return el;
  }
  function append(el, kids) {
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(clean(kid)));
    }
    return el;
  }
  const SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
    append(el, kids);
    return el;
  }

  const href = (path) => BASE + path;
  const seg = (value) => encodeURIComponent(String(value));
  function link(path, text, props = {}) {
    return h("a", { href: href(path), "data-link": true, ...props }, text);
  }

  // ---------------------------------------------------------------- formats

  let clockSkew = 0; // server time - browser time, seconds
  const nowSeconds = () => Date.now() / 1000 + clockSkew;
  function noteServerTime(t) {
    if (typeof t === "number" && isFinite(t)) clockSkew = t - Date.now() / 1000;
  }

  const DASH = "—";
  const isNum = (v) => typeof v === "number" && isFinite(v);
  const pad = (n, w = 2) => String(n).padStart(w, "0");

  function fmtNum(v) {
    return isNum(v) ? v.toLocaleString("en-US") : DASH;
  }
  function fmtRate(v) {
    if (!isNum(v)) return DASH;
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + "/s";
  }
  function fmtDuration(sec) {
    if (!isNum(sec)) return DASH;
    if (sec < 0) return "-" + fmtDuration(-sec);
    if (sec < 1) {
      const ms = sec * 1000;
      return (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + " ms";
    }
    if (sec < 60) return sec.toFixed(sec < 10 ? 2 : 1) + " s";
    return fmtSpan(sec);
  }
  function fmtSpan(sec) {
    sec = Math.round(sec);
    const d = Math.floor(sec / 86400), hr = Math.floor((sec % 86400) / 3600);
    const m = Math.floor((sec % 3600) / 60), ss = sec % 60;
    if (d) return `${d} d ${hr} h`;
    if (hr) return `${hr} h ${m} min`;
    if (m) return `${m} min ${ss} s`;
    return `${ss} s`;
  }
  function fmtTime(ts) {
    if (!isNum(ts)) return DASH;
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function fmtRelative(ts, now = nowSeconds()) {
    const diff = now - ts;
    const a = Math.abs(diff);
    if (a < 1) return "now";
    let text;
    if (a < 60) text = `${Math.floor(a)} s`;
    else if (a < 3600) text = `${Math.floor(a / 60)} min`;
    else if (a < 86400) text = `${Math.floor(a / 3600)} h`;
    else text = `${Math.floor(a / 86400)} d`;
    return diff >= 0 ? `${text} ago` : `in ${text}`;
  }
  // A time: local ISO-like, then relative (kept fresh by the ticker below).
  function when(ts) {
    if (!isNum(ts)) return h("span", { class: "muted" }, DASH);
    return h("span", { class: "when" },
      h("time", { datetime: new Date(ts * 1000).toISOString() }, fmtTime(ts)),
      h("span", { class: "rel", dataset: { ts } }, fmtRelative(ts)));
  }
  setInterval(() => {
    const now = nowSeconds();
    for (const el of document.querySelectorAll("#content .rel[data-ts]")) {
      const text = fmtRelative(Number(el.dataset.ts), now);
      if (el.textContent !== text) el.textContent = text;
    }
  }, 1000);

  function json(value) {
    try {
      return JSON.stringify(value, null, 2);
    } catch {
      return String(value);
    }
  }
  // The badge's class is st-<value>: the .status-<status> hook stays on the
  // cell alone (one match per row).
  function statusBadge(status) {
    if (status == null) return h("span", { class: "muted" }, DASH);
    const safe = String(status).replace(/[^a-z_-]/gi, "");
    return h("span", { class: `badge st-${safe}` }, status);
  }
  // A cell whose text is cut with an ellipsis; the full text in the tooltip.
  function trunc(text, cls = "") {
    if (text == null || text === "") return h("span", { class: "muted" }, DASH);
    return h("span", { class: `trunc ${cls}`, title: String(text) }, String(text));
  }

  // ---------------------------------------------------------------- banners

  const banners = () => $("#banners");
  function banner(kind, message) {
    const text = clean(message);
    for (const el of banners().querySelectorAll("." + kind)) {
      if (el.dataset.message === text) return el; // no duplicates
    }
    const el = h("div", { class: kind, role: kind === "error" ? "alert" : "status", dataset: { message: text } },
      h("span", { class: "banner-text" }, text),
      h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", title: "Dismiss", onclick: () => el.remove() }));
    banners().append(el);
    return el;
  }
  const showError = (message) => banner("error", message);
  const showNotice = (message) => banner("notice", message);
  const clearBanners = () => banners().replaceChildren();

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }
  async function readAnswer(res) {
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const msg = data && typeof data.error === "string" ? data.error : `HTTP ${res.status} ${res.statusText}`.trim();
      throw new ApiError(msg, res.status);
    }
    if (data === null) throw new ApiError("the server answered something that is not JSON", res.status);
    return data;
  }
  async function getJSON(path, view) {
    const res = await fetch(href("/api" + path), {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      signal: view && view.abort.signal,
    });
    return readAnswer(res);
  }
  async function postJSON(path, body) {
    const res = await fetch(href("/api" + path), {
      method: "POST",
      headers: { "X-QTasks-Request": "1", "Content-Type": "application/json", Accept: "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body || {}),
    });
    return readAnswer(res);
  }

  // ---------------------------------------------------------------- router

  const ROUTES = [
    [/^\/$/, "overview", viewOverview],
    [/^\/workers$/, "workers", viewWorkers],
    [/^\/tasks$/, "tasks", viewTasks],
    [/^\/tasks\/([^/]+)$/, "tasks", viewTask],
    [/^\/dead-letters$/, "dead-letters", viewDeadLetters],
    [/^\/dead-letters\/([^/]+)$/, "dead-letters", viewDeadLetterQueue],
    [/^\/workflows$/, "workflows", viewWorkflows],
    [/^\/workflows\/([^/]+)$/, "workflows", viewWorkflow],
    [/^\/schedules$/, "schedules", viewSchedules],
    [/^\/state$/, "state", viewState],
    [/^\/state\/([^/]+)$/, "state", viewState],
    [/^\/state\/([^/]+)\/([^/]+)$/, "state", viewState],
  ];

  function currentPath() {
    let path = location.pathname;
    if (BASE && (path === BASE || path.startsWith(BASE + "/"))) path = path.slice(BASE.length);
    path = path.replace(/\/+$/, "");
    return path || "/";
  }
  function decode(part) {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  }

  let current = null;
  let generation = 0;

  function teardown(view) {
    if (!view) return;
    view.abort.abort();
    for (const fn of view.cleanups.splice(0)) {
      try {
        fn();
      } catch (e) {
        console.error(e);
      }
    }
  }

  function setTitle(text) {
    $("#page-title").textContent = clean(text);
    document.title = clean(text) + " · QTasks";
  }
  function setContent(...nodes) {
    $("#content").replaceChildren(...nodes.flat(Infinity).filter((n) => n != null && n !== false));
  }

  async function render() {
    teardown(current);
    const view = { id: ++generation, abort: new AbortController(), cleanups: [] };
    view.alive = () => current === view;
    current = view;
    delete document.body.dataset.ready;
    setLive("off");

    const path = currentPath();
    const params = new URLSearchParams(location.search);
    let match = null;
    let nav = null;
    let fn = viewNotFound;
    for (const [re, name, f] of ROUTES) {
      match = path.match(re);
      if (match) {
        nav = name;
        fn = f;
        break;
      }
    }
    for (const a of document.querySelectorAll("#nav a")) {
      const active = a.dataset.nav === nav;
      a.classList.toggle("active", active);
      if (active) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    try {
      await fn(view, match ? match.slice(1).map(decode) : [], params);
    } catch (e) {
      if (!view.alive() || (e && e.name === "AbortError")) return;
      if (!(e instanceof ApiError)) console.error(e);
      showError(e && e.message ? e.message : String(e));
      if ($("#content .loading")) setContent(h("p", { class: "muted" }, "Nothing to show."));
    }
    if (view.alive()) document.body.dataset.ready = "1";
  }

  function navigate(url, { replace = false } = {}) {
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
    clearBanners();
    window.scrollTo(0, 0);
    render();
  }

  document.addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a[data-link]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (a.target && a.target !== "_self") return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    e.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  });
  window.addEventListener("popstate", () => {
    clearBanners();
    render();
  });

  function loading() {
    setContent(h("p", { class: "muted loading" }, "Loading…"));
  }

  // ---------------------------------------------------------------- live

  function setLive(state) {
    const el = $("#live-indicator");
    if (!el || el.dataset.state === state) return;
    el.dataset.state = state;
    el.hidden = state === "off";
    el.textContent = state;
    el.title = state === "live" ? "live updates from /api/live" : state === "reconnecting" ? "live updates interrupted, reconnecting" : "";
  }

  // Opens EventSource(base + "/api/live") for the view; coalesces updates
  // and hands them to onFrame at most once per animation frame:
  // {generated_at, last_hour, workers, chart_tails: [...], recent: [...newest first]}.
  function startLive(view, onFrame, recentLimit) {
    let source = null;
    let retry = 0;
    let frame = 0;
    let pending = null;
    let closed = false;

    function connect() {
      if (closed) return;
      source = new EventSource(href("/api/live"));
      source.onopen = () => setLive("live");
      source.onerror = () => {
        if (closed) return;
        setLive("reconnecting");
        if (source.readyState === EventSource.CLOSED) {
          // The browser gave up (an HTTP error): try again ourselves.
          clearTimeout(retry);
          retry = setTimeout(connect, 5000);
        }
      };
      source.addEventListener("update", onMessage);
      source.onmessage = onMessage; // an unnamed event, to be lenient
    }
    function onMessage(ev) {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!data || typeof data !== "object") return;
      setLive("live");
      const p = pending || (pending = { chart_tails: [], recent: [] });
      if (data.generated_at != null) p.generated_at = data.generated_at;
      if (data.last_hour) p.last_hour = data.last_hour;
      if (data.workers) p.workers = data.workers;
      if (data.chart_tail) p.chart_tails.push(data.chart_tail);
      if (Array.isArray(data.recent) && data.recent.length) {
        // newest first; bounded even when frames do not run (a hidden tab)
        p.recent = dedupeTasks(data.recent.concat(p.recent), recentLimit);
      }
      if (p.chart_tails.length > 120) p.chart_tails.splice(0, p.chart_tails.length - 120);
      if (!frame) frame = requestAnimationFrame(flush);
    }
    function flush() {
      frame = 0;
      const p = pending;
      pending = null;
      if (!p || closed || !view.alive()) return;
      noteServerTime(p.generated_at);
      onFrame(p);
    }
    view.cleanups.push(() => {
      closed = true;
      clearTimeout(retry);
      if (frame) cancelAnimationFrame(frame);
      if (source) source.close();
      setLive("off");
    });
    setLive("reconnecting");
    connect();
  }

  function dedupeTasks(tasks, limit) {
    const seen = new Set();
    const out = [];
    for (const t of tasks) {
      if (!t || typeof t !== "object") continue;
      const key = String(t.uuid);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(t);
      if (out.length >= limit) break;
    }
    return out;
  }

  // ---------------------------------------------------------------- task table

  const TASK_COLUMNS = ["UUID", "Task", "Queue", "Status", "Attempt", "Worker", "Created", "Updated", "Duration", "Error"];

  function taskRow(t, fresh) {
    const uuid = t.uuid == null ? "" : String(t.uuid);
    return h("tr", { dataset: { uuid, status: t.status }, class: fresh ? "fresh" : null },
      h("td", { class: "mono" }, uuid ? link("/tasks/" + seg(uuid), trunc(uuid, "uuid")) : DASH),
      h("td", {}, trunc(t.task_name, "name")),
      h("td", {}, t.queue == null ? DASH : link("/tasks?queue=" + seg(t.queue), trunc(t.queue, "queue"))),
      h("td", { class: "status-" + String(t.status).replace(/[^a-z_-]/gi, "") }, statusBadge(t.status)),
      h("td", { class: "num" }, fmtNum(t.attempt)),
      h("td", { class: "mono" }, trunc(t.worker_id, "worker")),
      h("td", {}, when(t.created_at)),
      h("td", {}, when(t.updated_at)),
      h("td", { class: "num" }, fmtDuration(t.duration)),
      h("td", { class: "fill" }, t.error ? trunc(t.error, "err") : h("span", { class: "muted" }, DASH)));
  }

  // A task table that can take live updates: rows are reused by uuid while
  // the task has not changed, so a frame with 50 updates touches little.
  function makeTaskTable(tasks, limit, emptyText) {
    const tbody = h("tbody");
    const table = h("table", { id: "tasks", class: "data tasks" },
      h("thead", {}, h("tr", {}, TASK_COLUMNS.map((c) => h("th", { scope: "col" }, c)))), tbody);
    const empty = h("p", { class: "muted empty" }, emptyText);
    let rows = new Map(); // uuid -> {sig, tr}
    let list = [];
    const sig = (t) => [t.status, t.updated_at, t.attempt, t.duration, t.error, t.worker_id].join("\u0001");
    function set(next, fresh = new Set()) {
      list = next;
      const nextRows = new Map();
      const trs = [];
      for (const t of list) {
        const key = String(t.uuid);
        const old = rows.get(key);
        const signature = sig(t);
        const tr = old && old.sig === signature ? old.tr : taskRow(t, fresh.has(key));
        nextRows.set(key, { sig: signature, tr });
        trs.push(tr);
      }
      rows = nextRows;
      tbody.replaceChildren(...trs);
      empty.hidden = list.length > 0;
    }
    function prepend(recent) {
      const fresh = new Set(recent.map((t) => String(t.uuid)));
      set(dedupeTasks(recent.concat(list), limit), fresh);
    }
    set(dedupeTasks(tasks, limit));
    return { el: h("div", { class: "table-wrap" }, table, empty), set, prepend };
  }

  // ---------------------------------------------------------------- charts

  function drawChart(svg, values, start, bucket, kind) {
    const W = 600, H = 150, L = 34, R = 6, T = 8, B = 20;
    const n = values.length || 1;
    const max = Math.max(1, ...values.filter(isNum));
    const top = niceCeil(max);
    const pw = W - L - R, ph = H - T - B;
    const bw = pw / n;
    const kids = [];
    for (const f of [0, 0.5, 1]) {
      const y = T + ph - f * ph;
      kids.push(s("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
      kids.push(s("text", { x: L - 4, y: y + 3, class: "axis", "text-anchor": "end" }, fmtNum(top * f)));
    }
    values.forEach((v, i) => {
      const val = isNum(v) ? v : 0;
      const bh = (val / top) * ph;
      const t0 = start + i * bucket;
      kids.push(s("rect", {
        x: (L + i * bw + 0.5).toFixed(2), y: (T + ph - bh).toFixed(2),
        width: Math.max(0.5, bw - 1).toFixed(2), height: Math.max(0, bh).toFixed(2),
        class: "bar " + kind + (i === n - 1 ? " current" : ""),
      }, s("title", {}, `${fmtTime(t0).slice(11, 16)}: ${fmtNum(val)} ${kind}`)));
    });
    const labels = [[0, "start"], [Math.floor(n / 2), "middle"], [n - 1, "end"]];
    for (const [i, anchor] of labels) {
      kids.push(s("text", {
        x: L + i * bw + (anchor === "end" ? bw : anchor === "start" ? 0 : bw / 2), y: H - 5, class: "axis",
        "text-anchor": anchor,
      }, fmtTime(start + i * bucket).slice(11, 16)));
    }
    svg.replaceChildren(...kids);
  }
  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function applyChartTail(chart, tail) {
    if (!chart || !tail || !isNum(tail.start)) return;
    const b = chart.bucket_seconds || 60;
    const n = chart.succeeded.length;
    if (!n) return;
    const last = chart.start + (n - 1) * b;
    if (tail.start > last) {
      const shift = Math.round((tail.start - last) / b);
      if (shift >= n) {
        chart.succeeded.fill(0);
        chart.failed.fill(0);
        chart.start = tail.start - (n - 1) * b;
      } else {
        chart.succeeded.splice(0, shift);
        chart.failed.splice(0, shift);
        for (let i = 0; i < shift; i++) {
          chart.succeeded.push(0);
          chart.failed.push(0);
        }
        chart.start += shift * b;
      }
    }
    const idx = Math.round((tail.start - chart.start) / b);
    if (idx >= 0 && idx < n) {
      if (isNum(tail.succeeded)) chart.succeeded[idx] = tail.succeeded;
      if (isNum(tail.failed)) chart.failed[idx] = tail.failed;
    }
  }

  // ---------------------------------------------------------------- overview

  async function viewOverview(view) {
    setTitle("Overview");
    loading();
    const [data, recent] = await Promise.all([
      getJSON("/overview", view),
      getJSON(`/tasks?limit=${OVERVIEW_TASKS}`, view).catch((e) => (e.name === "AbortError" ? Promise.reject(e) : e)),
    ]);
    if (!view.alive()) return;
    noteServerTime(data.generated_at);

    const stat = (id, label, value, extra) =>
      h("div", { class: "stat" + (extra ? " " + extra : "") }, h("div", { class: "stat-value", id }, fmtNum(value)),
        h("div", { class: "stat-label" }, label));
    const lh = data.last_hour || {};
    const wk = data.workers || {};
    const stats = h("section", { class: "stats", id: "totals", "aria-label": "Last hour" },
      stat("total-succeeded", "succeeded (last hour)", lh.succeeded, "ok"),
      stat("total-failed", "failed (last hour)", lh.failed, "bad"),
      stat("total-retried", "retried (last hour)", lh.retried, "warn"),
      stat("total-dead_lettered", "dead-lettered (last hour)", lh.dead_lettered, "bad"),
      link("/workers", stat("workers-online", "workers online", wk.online, "ok"), { class: "stat-link" }),
      link("/workers", stat("workers-stale", "workers stale", wk.stale, wk.stale ? "warn" : ""), { class: "stat-link" }));

    const chart = data.chart && Array.isArray(data.chart.succeeded) ? {
      bucket_seconds: data.chart.bucket_seconds || 60,
      start: data.chart.start,
      succeeded: data.chart.succeeded.slice(),
      failed: Array.isArray(data.chart.failed) ? data.chart.failed.slice() : data.chart.succeeded.map(() => 0),
    } : null;
    const svgOk = s("svg", { id: "chart-succeeded", class: "chart", viewBox: "0 0 600 150", role: "img", "aria-label": "Succeeded per minute over the last hour" });
    const svgBad = s("svg", { id: "chart-failed", class: "chart", viewBox: "0 0 600 150", role: "img", "aria-label": "Failures per minute over the last hour" });
    const okNow = h("span", { class: "chart-now" });
    const badNow = h("span", { class: "chart-now" });
    function drawCharts() {
      if (!chart) return;
      drawChart(svgOk, chart.succeeded, chart.start, chart.bucket_seconds, "succeeded");
      drawChart(svgBad, chart.failed, chart.start, chart.bucket_seconds, "failed");
      okNow.textContent = `this minute: ${fmtNum(chart.succeeded[chart.succeeded.length - 1])}`;
      badNow.textContent = `this minute: ${fmtNum(chart.failed[chart.failed.length - 1])}`;
    }
    const charts = h("section", { class: "charts" },
      h("figure", { class: "chart-box" }, h("figcaption", {}, "Throughput: succeeded per minute, last hour ", okNow), svgOk),
      h("figure", { class: "chart-box" }, h("figcaption", {}, "Failures per minute, last hour ", badNow), svgBad));
    if (!chart) charts.replaceChildren(h("p", { class: "muted" }, "No chart data."));

    const queues = Array.isArray(data.queues) ? data.queues : [];
    const source = data.queue_source === "management" ? "RabbitMQ management API"
      : data.queue_source === "amqp" ? "AMQP (no unacked counts or rates without the management API)" : data.queue_source;
    const queueRows = (list) => list.map((q) => h("tr", { dataset: { queue: q.name } },
        h("td", {}, link("/tasks?queue=" + seg(q.name), trunc(q.name, "queue"), { title: "tasks of this queue" })),
        h("td", { class: "num" }, fmtNum(q.ready)),
        h("td", { class: "num" }, fmtNum(q.unacked)),
        h("td", { class: "num" + (q.consumers === 0 ? " warn-text" : "") }, fmtNum(q.consumers)),
        h("td", { class: "num" }, fmtRate(q.publish_rate)),
        h("td", { class: "num" }, fmtRate(q.deliver_rate)),
        h("td", { class: "num" }, q.dead_letters == null ? DASH
          : link("/dead-letters/" + seg(q.name), fmtNum(q.dead_letters), { class: q.dead_letters > 0 ? "dl-link bad-text" : "dl-link" }))));
    const queueBody = h("tbody", {}, queueRows(queues));
    const queueTable = h("table", { id: "queues", class: "data" },
      h("thead", {}, h("tr", {}, ["Queue", "Ready", "Unacked", "Consumers", "In", "Out", "Dead letters"].map((c) => h("th", { scope: "col" }, c)))),
      queueBody);

    let taskSection;
    let tasks = null;
    if (recent instanceof Error) {
      taskSection = h("p", { class: "muted" }, "Recent tasks unavailable: " + recent.message);
    } else {
      tasks = makeTaskTable(Array.isArray(recent.tasks) ? recent.tasks : [], OVERVIEW_TASKS, "No tasks recorded yet.");
      taskSection = tasks.el;
    }

    setContent(
      stats,
      charts,
      h("section", {},
        h("h2", {}, "Queues ", h("small", { class: "muted" }, source ? "from the " + source : "")),
        data.queue_error ? h("p", { class: "warning" }, "Queue statistics: " + data.queue_error) : null,
        queues.length ? h("div", { class: "table-wrap" }, queueTable) : h("p", { class: "muted empty" }, "No task queues.")),
      h("section", {}, h("h2", {}, "Recent tasks ", link("/tasks", "all tasks →", { class: "small" })), taskSection));
    drawCharts();

    startLive(view, (u) => {
      if (u.last_hour) {
        for (const k of ["succeeded", "failed", "retried", "dead_lettered"]) {
          const el = $("#total-" + k);
          if (el && u.last_hour[k] !== undefined) el.textContent = fmtNum(u.last_hour[k]);
        }
      }
      if (u.workers) {
        $("#workers-online").textContent = fmtNum(u.workers.online);
        $("#workers-stale").textContent = fmtNum(u.workers.stale);
      }
      if (chart && u.chart_tails.length) {
        for (const t of u.chart_tails) applyChartTail(chart, t);
        drawCharts();
      }
      if (tasks && u.recent.length) tasks.prepend(u.recent);
    }, OVERVIEW_TASKS);

    // Queue counts are not in the live updates (they come from the broker,
    // not the store): refreshed as the workers page is.
    let busy = false;
    const timer = setInterval(async () => {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const fresh = await getJSON("/overview", view);
        if (view.alive() && Array.isArray(fresh.queues)) queueBody.replaceChildren(...queueRows(fresh.queues));
      } catch (e) {
        if (view.alive() && e.name !== "AbortError") showError("Queues: " + e.message);
      } finally {
        busy = false;
      }
    }, WORKERS_REFRESH_MS);
    view.cleanups.push(() => clearInterval(timer));
  }

  // ---------------------------------------------------------------- workers

  async function viewWorkers(view) {
    setTitle("Workers");
    loading();
    const tbody = h("tbody");
    const note = h("p", { class: "muted small" });
    const empty = h("p", { class: "muted empty" }, "No workers online (none has sent a heartbeat lately).");
    const columns = ["Worker", "Status", "Host", "PID", "Queues", "Concurrency", "In flight", "Processed", "Failed", "Retried",
      "Version", "Started", "Last heartbeat", "Expires", "Uptime"];
    const table = h("table", { id: "workers", class: "data workers" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))), tbody);

    function fill(data) {
      const list = Array.isArray(data.workers) ? data.workers : [];
      note.textContent = isNum(data.stale_after)
        ? `A worker is stale when its last heartbeat is older than ${fmtDuration(data.stale_after)}; it disappears when its heartbeat expires.`
        : "";
      tbody.replaceChildren(...list.map((w) => {
        const stale = w.status === "stale";
        return h("tr", { dataset: { worker: w.worker_id, status: w.status }, class: stale ? "stale" : null },
          h("td", { class: "mono fill" }, trunc(w.worker_id, "worker")),
          h("td", { class: "status-" + String(w.status).replace(/[^a-z_-]/gi, "") }, statusBadge(w.status)),
          h("td", {}, trunc(w.host, "host")),
          h("td", { class: "num" }, w.pid == null ? DASH : String(w.pid)),
          h("td", {}, trunc(Array.isArray(w.queues) ? w.queues.join(", ") : w.queues, "queues")),
          h("td", { class: "num" }, fmtNum(w.concurrency)),
          h("td", { class: "num" }, fmtNum(w.in_flight)),
          h("td", { class: "num" }, fmtNum(w.processed)),
          h("td", { class: "num" + (w.failed ? " bad-text" : "") }, fmtNum(w.failed)),
          h("td", { class: "num" }, fmtNum(w.retried)),
          h("td", {}, trunc(w.version, "version")),
          h("td", {}, when(w.started_at)),
          h("td", {}, when(w.last_heartbeat)),
          h("td", {}, when(w.expires_at)),
          h("td", { class: "num" }, isNum(w.uptime) ? fmtSpan(w.uptime) : DASH));
      }));
      empty.hidden = list.length > 0;
      table.hidden = list.length === 0;
    }

    fill(await getJSON("/workers", view));
    if (!view.alive()) return;
    setContent(note, h("div", { class: "table-wrap" }, table), empty,
      h("p", { class: "muted small" }, `Refreshed every ${WORKERS_REFRESH_MS / 1000} s.`));
    let busy = false;
    const timer = setInterval(async () => {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const data = await getJSON("/workers", view);
        if (view.alive()) fill(data);
      } catch (e) {
        if (view.alive() && e.name !== "AbortError") showError("Workers: " + e.message);
      } finally {
        busy = false;
      }
    }, WORKERS_REFRESH_MS);
    view.cleanups.push(() => clearInterval(timer));
  }

  // ---------------------------------------------------------------- tasks

  function toLocalInput(ts) {
    if (!isNum(ts)) return "";
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function fromLocalInput(value) {
    if (!value) return null;
    const t = new Date(value).getTime(); // datetime-local values parse as local time
    return isFinite(t) ? Math.floor(t / 1000) : null;
  }

  async function viewTasks(view, _parts, params) {
    setTitle("Tasks");
    const statuses = params.getAll("status").filter((v) => v !== "");
    const filters = {
      name: params.get("name") || "",
      queue: params.get("queue") || "",
      since: params.get("since") || "",
      until: params.get("until") || "",
      uuid: (params.get("uuid") || "").trim(),
    };
    const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    const filtered = statuses.length > 0 || Object.values(filters).some((v) => v !== "");

    // the form
    const statusSelect = h("select", { name: "status", id: "filter-status" },
      h("option", { value: "" }, "any status"),
      TASK_STATUSES.map((st) => h("option", { value: st }, st)));
    if (statuses.length > 1) {
      statusSelect.append(h("option", { value: statuses.join(",") }, statuses.join(" + ")));
      statusSelect.value = statuses.join(",");
    } else statusSelect.value = statuses[0] || "";
    const input = (name, value, props = {}) => h("input", { name, id: "filter-" + name, value, ...props });
    const since = input("since", toLocalInput(Number(filters.since) || null), { type: "datetime-local", step: 1 });
    const until = input("until", toLocalInput(Number(filters.until) || null), { type: "datetime-local", step: 1 });
    const label = (text, el) => h("label", {}, h("span", {}, text), el);
    const form = h("form", { id: "filters", class: "filters", role: "search" },
      label("Status", statusSelect),
      label("Task name", input("name", filters.name, { type: "text", placeholder: "exact name", autocomplete: "off" })),
      label("Queue", input("queue", filters.queue, { type: "text", placeholder: "default", autocomplete: "off" })),
      label("Since", since),
      label("Until", until),
      label("UUID", input("uuid", filters.uuid, { type: "search", placeholder: "exact uuid", class: "mono", autocomplete: "off" })),
      h("div", { class: "filter-buttons" },
        h("button", { type: "submit", class: "primary" }, "Filter"),
        link("/tasks", "Clear", { class: "button" })));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const q = new URLSearchParams();
      for (const st of String(fd.get("status") || "").split(",")) if (st) q.append("status", st);
      for (const k of ["name", "queue", "uuid"]) {
        const v = String(fd.get(k) || "").trim();
        if (v) q.set(k, v);
      }
      for (const [k, el] of [["since", since], ["until", until]]) {
        const t = fromLocalInput(el.value);
        if (t != null) q.set(k, String(t));
      }
      const qs = q.toString();
      navigate(href("/tasks") + (qs ? "?" + qs : ""));
    });

    // the query
    const api = new URLSearchParams();
    for (const st of statuses) api.append("status", st);
    for (const [k, v] of Object.entries(filters)) if (v !== "") api.set(k, v);
    api.set("limit", String(PAGE_SIZE));
    api.set("offset", String((page - 1) * PAGE_SIZE));

    if (!$("#filters")) setContent(form, h("p", { class: "muted loading" }, "Loading…"));
    const data = await getJSON("/tasks?" + api.toString(), view);
    if (!view.alive()) return;
    const list = Array.isArray(data.tasks) ? data.tasks : [];
    const table = makeTaskTable(list, PAGE_SIZE, filtered ? "No task matches these filters." : "No tasks recorded.");

    const pageUrl = (p) => {
      const q = new URLSearchParams(params);
      if (p <= 1) q.delete("page");
      else q.set("page", String(p));
      const qs = q.toString();
      return "/tasks" + (qs ? "?" + qs : "");
    };
    const offset = isNum(data.offset) ? data.offset : (page - 1) * PAGE_SIZE;
    const pager = h("nav", { class: "pager", id: "pager", "aria-label": "Pages of tasks" },
      page > 1 ? link(pageUrl(page - 1), "← Prev", { id: "page-prev", class: "button", rel: "prev" })
        : h("span", { id: "page-prev", class: "button disabled", "aria-disabled": "true" }, "← Prev"),
      h("span", { class: "muted", id: "page-info" },
        list.length ? `page ${page}: ${offset + 1}–${offset + list.length}` : `page ${page}`),
      data.has_more ? link(pageUrl(page + 1), "Next →", { id: "page-next", class: "button", rel: "next" })
        : h("span", { id: "page-next", class: "button disabled", "aria-disabled": "true" }, "Next →"));

    setContent(form, table.el, pager);
    if (!filtered && page === 1) {
      startLive(view, (u) => {
        if (u.recent.length) table.prepend(u.recent);
      }, PAGE_SIZE);
    }
  }

  // ---------------------------------------------------------------- task detail

  function dl(rows) {
    return h("dl", { class: "fields" }, rows.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }
  function pre(value, props = {}) {
    return h("pre", { class: "code", ...props }, value);
  }

  async function viewTask(view, [uuid]) {
    setTitle("Task " + uuid);
    loading();
    const t = await getJSON("/tasks/" + seg(uuid), view);
    if (!view.alive()) return;

    const dlq = t.dead_letter_queue;
    const summary = dl([
      ["UUID", h("span", { class: "mono", id: "task-uuid" }, t.uuid == null ? DASH : t.uuid)],
      ["Task", h("span", { id: "task-name", class: "break" }, t.task_name == null ? DASH : t.task_name)],
      ["Queue", t.queue == null ? DASH : link("/tasks?queue=" + seg(t.queue), t.queue)],
      ["Status", h("span", { id: "task-status", class: "status-" + String(t.status).replace(/[^a-z_-]/gi, "") }, statusBadge(t.status))],
      ["Priority", fmtNum(t.priority)],
      ["Attempt", fmtNum(t.attempt)],
      ["Worker", h("span", { class: "mono" }, t.worker_id == null ? DASH : t.worker_id)],
      ["Trace id", h("span", { class: "mono", id: "trace-id" }, t.trace_id == null ? DASH : t.trace_id)],
      ["Created", when(t.created_at)],
      ["Started", when(t.started_at)],
      ["Finished", when(t.finished_at)],
      ["Updated", when(t.updated_at)],
      ["Duration", fmtDuration(t.duration)],
      ["Retry delay", fmtDuration(t.retry_delay)],
      ["Dead-letter queue", h("span", { id: "dead-letter-queue" }, dlq == null ? DASH : link("/dead-letters/" + seg(dlq), dlq))],
    ]);

    // arguments
    const a = t.arguments;
    let args;
    if (a == null) args = h("p", { class: "muted", id: "arguments" }, "not recorded");
    else if (a.omitted) {
      args = h("p", { id: "arguments", dataset: { arguments: "omitted" } },
        h("span", { class: "badge muted-badge" }, "omitted"), " the task does not record its arguments");
    } else if (a.truncated) {
      args = h("div", { id: "arguments", dataset: { arguments: "truncated" } },
        h("p", {}, h("span", { class: "badge warn-badge" }, "truncated"), " only the first bytes of the arguments' JSON were recorded:"),
        pre(a.text == null ? "" : a.text));
    } else {
      const shown = {};
      if ("args" in a) shown.args = a.args;
      if ("kwargs" in a) shown.kwargs = a.kwargs;
      args = pre(json(Object.keys(shown).length ? shown : a), { id: "arguments" });
    }

    const result = "result" in t ? pre(json(t.result), { id: "result" }) : h("p", { class: "muted", id: "result" }, DASH);

    const f = t.failure;
    const failure = f ? h("section", { id: "failure", class: "failure" },
      h("h2", {}, "Failure"),
      dl([["Type", h("span", { class: "mono", id: "failure-type" }, f.type == null ? DASH : f.type)],
        ["Message", h("span", { id: "failure-message", class: "break" }, f.message == null ? DASH : f.message)]]),
      f.traceback ? pre(f.traceback, { id: "traceback", class: "code traceback" }) : null) : null;

    const attempts = Array.isArray(t.attempts) ? t.attempts : [];
    const attemptsTable = h("table", { id: "attempts", class: "data" },
      h("thead", {}, h("tr", {}, ["#", "Worker", "Received", "Started", "Ended", "Outcome", "Duration", "Delay before next", "Error"]
        .map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, attempts.map((at) => h("tr", { dataset: { attempt: at.attempt, outcome: at.outcome } },
        h("td", { class: "num" }, fmtNum(at.attempt)),
        h("td", { class: "mono" }, trunc(at.worker_id, "worker")),
        h("td", {}, when(at.received_at)),
        h("td", {}, when(at.started_at)),
        h("td", {}, when(at.ended_at)),
        h("td", { class: "outcome-" + String(at.outcome).replace(/[^a-z_-]/gi, "") },
          at.outcome == null ? h("span", { class: "muted" }, "in progress") : statusBadge(at.outcome)),
        h("td", { class: "num" }, fmtDuration(at.duration)),
        h("td", { class: "num" }, fmtDuration(at.retry_delay)),
        h("td", { class: "fill" }, trunc(at.error, "err"))))));

    const events = Array.isArray(t.events) ? t.events : [];
    const eventsTable = h("table", { id: "events", class: "data" },
      h("thead", {}, h("tr", {}, ["Event", "Attempt", "Worker", "Time", "Duration", "Details"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, events.map((ev) => {
        const details = [];
        if (isNum(ev.retry_delay)) details.push("retry in " + fmtDuration(ev.retry_delay));
        if (ev.dead_letter_queue) details.push("to " + ev.dead_letter_queue);
        if (ev.failure) details.push([ev.failure.type, ev.failure.message].filter((x) => x != null).join(": "));
        return h("tr", { dataset: { kind: ev.kind } },
          h("td", {}, statusBadge(ev.kind)),
          h("td", { class: "num" }, fmtNum(ev.attempt)),
          h("td", { class: "mono" }, trunc(ev.worker_id, "worker")),
          h("td", {}, when(ev.timestamp)),
          h("td", { class: "num" }, fmtDuration(ev.duration)),
          h("td", { class: "fill" }, details.length ? trunc(details.join("; "), "err") : h("span", { class: "muted" }, DASH)));
      })));

    setContent(
      h("p", {}, link("/tasks", "← Tasks", { class: "small" })),
      h("section", { id: "task-summary" }, summary),
      h("section", {}, h("h2", {}, "Arguments"), args),
      h("section", {}, h("h2", {}, "Result"), result),
      failure,
      h("section", {}, h("h2", {}, "Attempts"),
        attempts.length ? h("div", { class: "table-wrap" }, attemptsTable) : [hide(attemptsTable), h("p", { class: "muted empty" }, "No attempt yet.")]),
      h("section", {}, h("h2", {}, `Events (${events.length})`),
        events.length ? h("div", { class: "table-wrap" }, eventsTable) : h("p", { class: "muted empty" }, "No events."),
        h("details", {}, h("summary", {}, "Raw events (JSON)"), pre(json(events), { id: "events-json" }))));
  }

  // ---------------------------------------------------------------- dead letters

  async function viewDeadLetters(view) {
    setTitle("Dead letters");
    loading();
    const data = await getJSON("/dead-letters", view);
    if (!view.alive()) return;
    const queues = Array.isArray(data.queues) ? data.queues : [];
    const table = h("table", { id: "dead-letters", class: "data narrow" },
      h("thead", {}, h("tr", {}, ["Queue", "Dead-letter queue", "Messages"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, queues.map((q) => h("tr", { dataset: { queue: q.queue, count: q.count }, class: q.count ? null : "quiet" },
        h("td", {}, link("/dead-letters/" + seg(q.queue), trunc(q.queue, "queue"))),
        h("td", { class: "mono" }, trunc(q.dead_letter_queue, "queue")),
        h("td", { class: "num" + (q.count ? " bad-text" : "") }, fmtNum(q.count))))));
    setContent(queues.length ? h("div", { class: "table-wrap" }, table) : [table, h("p", { class: "muted empty" }, "No dead-letter queues.")]);
    if (!queues.length) table.hidden = true;
  }

  function headersView(headers) {
    if (!headers || typeof headers !== "object" || !Object.keys(headers).length) return h("span", { class: "muted" }, DASH);
    const entries = Object.entries(headers);
    return h("details", { class: "headers" },
      h("summary", {}, `${entries.length} header${entries.length === 1 ? "" : "s"}`),
      h("dl", { class: "fields compact" }, entries.map(([k, v]) =>
        [h("dt", { class: "mono" }, k), h("dd", { class: "mono" }, typeof v === "string" ? v : JSON.stringify(v))])));
  }

  async function viewDeadLetterQueue(view, [queueParam]) {
    setTitle("Dead letters: " + queueParam);
    loading();
    const data = await getJSON("/dead-letters/" + seg(queueParam) + "?limit=" + PAGE_SIZE, view);
    if (!view.alive()) return;
    const queue = data.queue == null ? queueParam : data.queue;
    const dlq = data.dead_letter_queue == null ? queue + ".dlq" : data.dead_letter_queue;
    setTitle("Dead letters: " + dlq);
    const messages = Array.isArray(data.messages) ? data.messages : [];
    const count = isNum(data.count) ? data.count : messages.length;

    const reload = () => render(); // keeps the banners
    const buttons = [];
    async function act(button, fn) {
      clearBanners();
      for (const b of buttons) b.disabled = true;
      button.setAttribute("aria-busy", "true");
      try {
        await fn();
      } catch (e) {
        if (view.alive()) {
          showError(e.message);
          for (const b of buttons) b.disabled = b.dataset.enabled !== "1";
          button.removeAttribute("aria-busy");
        }
        return;
      }
      if (view.alive()) reload();
    }
    const movedText = (moved) => {
      const parts = Object.entries(moved || {}).map(([q, n]) => `${n} message${n === 1 ? "" : "s"} to ${q}`);
      return parts.length ? parts.join(", ") : "nothing";
    };
    const mkButton = (label, action, enabled, onclick, extra = {}) => {
      const b = h("button", { type: "button", dataset: { action, enabled: enabled ? "1" : "0", ...(extra.dataset || {}) }, class: extra.class, title: extra.title }, label);
      b.disabled = !enabled;
      b.addEventListener("click", () => onclick(b));
      buttons.push(b);
      return b;
    };

    const replayAll = mkButton("Replay all", "replay-all", count > 0, (b) => {
      if (!window.confirm(`Replay ${count} messages from ${dlq} to their queues?`)) return;
      act(b, async () => {
        const res = await postJSON(`/dead-letters/${seg(queue)}/replay`, {});
        showNotice(`Replayed ${movedText(res.moved)}.`);
      });
    }, { class: "primary" });
    const purge = mkButton("Purge", "purge", count > 0, (b) => {
      if (!window.confirm(`Purge ${count} messages from ${dlq}?`)) return;
      act(b, async () => {
        const res = await postJSON(`/dead-letters/${seg(queue)}/purge`, { confirm: dlq });
        const n = res && isNum(res.purged) ? res.purged : 0;
        showNotice(`Purged ${n} message${n === 1 ? "" : "s"} from ${dlq}.`);
      });
    }, { class: "danger" });

    const table = h("table", { id: "messages", class: "data messages" },
      h("thead", {}, h("tr", {}, ["#", "Task", "UUID", "Origin", "Error", "Failed", "Attempts", "Reason", "Headers", ""]
        .map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, messages.map((m) => {
        const err = [m.error_type, m.error_message].filter((x) => x != null).join(": ");
        const replay = m.uuid == null
          ? mkButton("Replay", "replay", false, () => {}, { title: "this message has no task uuid: use Replay all" })
          : mkButton("Replay", "replay", true, (b) => act(b, async () => {
            const res = await postJSON(`/dead-letters/${seg(queue)}/replay`, { uuid: m.uuid });
            showNotice(`Replayed task ${clean(m.uuid)}: ${movedText(res.moved)}.`);
          }), { dataset: { uuid: m.uuid } });
        return h("tr", { dataset: { uuid: m.uuid == null ? null : m.uuid, position: m.position } },
          h("td", { class: "num" }, fmtNum(m.position)),
          h("td", {}, trunc(m.task_name, "name")),
          h("td", { class: "mono" }, m.uuid == null ? h("span", { class: "muted" }, DASH) : link("/tasks/" + seg(m.uuid), trunc(m.uuid, "uuid"))),
          h("td", {}, trunc(m.origin_queue, "queue")),
          h("td", { class: "error-cell" },
            m.error_type == null ? null : h("span", { class: "mono err-type" }, m.error_type),
            m.error_message == null ? null : h("span", { class: "err-msg", title: m.error_message }, m.error_message),
            err ? null : h("span", { class: "muted" }, DASH)),
          h("td", {}, when(m.failed_at)),
          h("td", { class: "num" }, fmtNum(m.attempts)),
          h("td", {}, m.reason == null ? h("span", { class: "muted" }, DASH) : h("span", { class: "badge reason-" + String(m.reason).replace(/[^a-z_-]/gi, "") }, m.reason)),
          h("td", {}, headersView(m.headers),
            m.body == null ? null : h("details", { class: "body" }, h("summary", {}, "body"), pre(m.body))),
          h("td", {}, replay));
      })));

    setContent(
      h("p", {}, link("/dead-letters", "← Dead letters", { class: "small" })),
      h("div", { class: "toolbar" },
        h("span", { id: "dlq-count" }, `${fmtNum(count)} message${count === 1 ? "" : "s"} in `, h("span", { class: "mono" }, dlq),
          messages.length < count ? ` (showing the first ${messages.length})` : ""),
        h("span", { class: "spacer" }), replayAll, purge),
      messages.length ? h("div", { class: "table-wrap" }, table) : [h("p", { class: "muted empty" }, "No messages: nothing was dead-lettered here."), hide(table)]);
  }
  function hide(el) {
    el.hidden = true;
    return el;
  }

  // ---------------------------------------------------------------- workflows

  // Calls reload() when asked, at most once per `ms` and never twice at
  // once; a request made meanwhile runs after (the last change is shown).
  function throttledReload(view, reload, ms) {
    let busy = false, wanted = false, last = 0, timer = 0;
    async function run() {
      timer = 0;
      if (busy || !view.alive()) return;
      busy = true;
      wanted = false;
      last = Date.now();
      try {
        await reload();
      } catch (e) {
        if (view.alive() && e.name !== "AbortError") showError(e.message);
      } finally {
        busy = false;
      }
      if (wanted) request();
    }
    function request() {
      wanted = true;
      if (busy || timer) return;
      timer = setTimeout(run, Math.max(0, last + ms - Date.now()));
    }
    view.cleanups.push(() => clearTimeout(timer));
    return request;
  }

  // The API's 503 for a store without workflows (or no store): the page says so.
  function workflowsUnavailable(e) {
    if (!(e instanceof ApiError) || e.status !== 503) return false;
    setContent(h("p", { class: "muted empty", id: "workflows-unavailable" },
      "Workflows need a result store that keeps them (the workers' --result-store: SQLite, Redis or memory). ",
      h("span", { class: "mono" }, e.message)));
    return true;
  }

  function workflowRow(w) {
    const id = w.id == null ? "" : String(w.id);
    const outcome = w.error != null ? trunc(w.error, "err")
      : w.result !== undefined && w.result !== null ? trunc(JSON.stringify(w.result), "result")
        : h("span", { class: "muted" }, DASH);
    return h("tr", { dataset: { workflow: id, status: w.status } },
      h("td", { class: "mono" }, id ? link("/workflows/" + seg(id), trunc(id, "uuid")) : DASH),
      h("td", { class: "status-" + String(w.status).replace(/[^a-z_-]/gi, "") }, statusBadge(w.status)),
      h("td", {}, trunc(w.policy, "policy")),
      h("td", { class: "num" }, fmtNum(w.tasks)),
      h("td", {}, when(w.created_at)),
      h("td", {}, when(w.updated_at)),
      h("td", { class: "fill" + (w.error != null ? " bad-text" : "") }, outcome));
  }

  async function viewWorkflows(view, _parts, params) {
    setTitle("Workflows");
    const statuses = params.getAll("status").flatMap((v) => v.split(",")).filter((v) => v !== "");
    const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);

    const statusSelect = h("select", { name: "status", id: "filter-status" },
      h("option", { value: "" }, "any status"),
      WORKFLOW_STATUSES.map((st) => h("option", { value: st }, st)));
    if (statuses.length > 1) {
      statusSelect.append(h("option", { value: statuses.join(",") }, statuses.join(" + ")));
      statusSelect.value = statuses.join(",");
    } else statusSelect.value = statuses[0] || "";
    const form = h("form", { id: "filters", class: "filters", role: "search" },
      h("label", {}, h("span", {}, "Status"), statusSelect),
      h("div", { class: "filter-buttons" },
        h("button", { type: "submit", class: "primary" }, "Filter"),
        link("/workflows", "Clear", { class: "button" })));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const st of String(statusSelect.value || "").split(",")) if (st) q.append("status", st);
      const qs = q.toString();
      navigate(href("/workflows") + (qs ? "?" + qs : ""));
    });

    const api = new URLSearchParams();
    for (const st of statuses) api.append("status", st);
    api.set("limit", String(PAGE_SIZE));
    api.set("offset", String((page - 1) * PAGE_SIZE));

    if (!$("#filters")) setContent(form, h("p", { class: "muted loading" }, "Loading…"));
    let data;
    try {
      data = await getJSON("/workflows?" + api.toString(), view);
    } catch (e) {
      if (view.alive() && workflowsUnavailable(e)) return;
      throw e;
    }
    if (!view.alive()) return;

    const tbody = h("tbody");
    const table = h("table", { id: "workflows", class: "data workflows" },
      h("thead", {}, h("tr", {}, ["ID", "Status", "Policy", "Tasks", "Created", "Updated", "Result or error"]
        .map((c) => h("th", { scope: "col" }, c)))), tbody);
    const empty = h("p", { class: "muted empty" },
      statuses.length ? "No workflow matches this filter." : "No workflows recorded (or all expired).");
    const truncated = h("p", { class: "warning", id: "workflows-scan-truncated" },
      "Only the newest workflows were searched for this status.");
    const pageInfo = h("span", { class: "muted", id: "page-info" });
    const pageUrl = (p) => {
      const q = new URLSearchParams(params);
      if (p <= 1) q.delete("page");
      else q.set("page", String(p));
      const qs = q.toString();
      return "/workflows" + (qs ? "?" + qs : "");
    };
    const prev = page > 1 ? link(pageUrl(page - 1), "← Prev", { id: "page-prev", class: "button", rel: "prev" })
      : h("span", { id: "page-prev", class: "button disabled", "aria-disabled": "true" }, "← Prev");
    const next = h("span", { id: "page-next-slot" });
    const pager = h("nav", { class: "pager", id: "pager", "aria-label": "Pages of workflows" }, prev, pageInfo, next);

    let shown = null;
    function fill(d) {
      // A reload that changed nothing leaves the rows as they are.
      const signature = JSON.stringify(d);
      if (signature === shown) return;
      shown = signature;
      const list = Array.isArray(d.workflows) ? d.workflows : [];
      tbody.replaceChildren(...list.map(workflowRow));
      table.hidden = list.length === 0;
      empty.hidden = list.length > 0;
      truncated.hidden = !d.scan_truncated;
      const offset = isNum(d.offset) ? d.offset : (page - 1) * PAGE_SIZE;
      pageInfo.textContent = list.length ? `page ${page}: ${offset + 1}–${offset + list.length}` : `page ${page}`;
      next.replaceChildren(d.has_more ? link(pageUrl(page + 1), "Next →", { id: "page-next", class: "button", rel: "next" })
        : h("span", { id: "page-next", class: "button disabled", "aria-disabled": "true" }, "Next →"));
    }
    fill(data);
    setContent(form, truncated, h("div", { class: "table-wrap" }, table), empty, pager);

    // Workflows change when their tasks do: a live update with tasks that
    // changed reloads this page of the list.
    const reload = throttledReload(view, async () => {
      const fresh = await getJSON("/workflows?" + api.toString(), view);
      if (view.alive()) fill(fresh);
    }, 2000);
    startLive(view, (u) => {
      if (u.recent.length) reload();
    }, PAGE_SIZE);
  }

  function workflowTreeView(node) {
    if (!node || typeof node !== "object") return h("li", { class: "muted" }, DASH);
    const error = node.error == null ? null : h("div", { class: "wf-error err" }, node.error);
    if (node.kind === "task") {
      const uuid = node.uuid == null ? "" : String(node.uuid);
      return h("li", { class: "wf-node wf-task", dataset: { uuid, status: node.status == null ? "" : node.status } },
        h("div", { class: "wf-line" },
          node.status == null ? h("span", { class: "badge muted-badge", title: "no record of this task yet" }, "not run") : statusBadge(node.status),
          h("span", { class: "wf-name" }, node.task_name == null ? "?" : node.task_name),
          uuid ? link("/tasks/" + seg(uuid), uuid, { class: "mono small wf-link" }) : null),
        error);
    }
    const children = Array.isArray(node.children) ? node.children : [];
    if (node.kind === "chain") {
      return h("li", { class: "wf-node wf-chain" },
        h("div", { class: "wf-line wf-head" }, h("span", { class: "wf-kind" }, "chain"),
          h("span", { class: "muted" }, ` ${children.length} step${children.length === 1 ? "" : "s"}, in order`)),
        error,
        h("ol", { class: "wf-children" }, children.map(workflowTreeView)));
    }
    if (node.kind === "group") {
      const total = isNum(node.total) ? node.total : children.length;
      let progress;
      if (isNum(node.settled)) {
        const parts = [`${fmtNum(node.settled)}/${fmtNum(total)} settled`, `${fmtNum(node.failed || 0)} failed`];
        if (node.halted) parts.push("halted");
        if (node.completed) parts.push("complete");
        progress = h("span", { class: "wf-progress" + (node.failed ? " bad-text" : node.completed ? " ok-text" : "") }, parts.join(", "));
      } else progress = h("span", { class: "wf-progress muted" }, "not started");
      const omitted = isNum(node.omitted) && node.omitted > 0
        ? h("li", { class: "wf-omitted muted" }, `… ${fmtNum(node.omitted)} more member${node.omitted === 1 ? "" : "s"}`) : null;
      return h("li", { class: "wf-node wf-group", dataset: { group: node.id == null ? "" : node.id } },
        h("div", { class: "wf-line wf-head" }, h("span", { class: "wf-kind" }, "group"),
          h("span", { class: "muted" }, ` ${fmtNum(total)} member${total === 1 ? "" : "s"}` +
            (isNum(node.window) ? `, at most ${fmtNum(node.window)} at once` : "")),
          progress,
          node.id == null ? null : h("span", { class: "mono small muted wf-id", title: "the group's id" }, node.id)),
        error,
        h("ul", { class: "wf-children" }, children.map(workflowTreeView), omitted));
    }
    return h("li", { class: "muted" }, "unknown step");
  }
  function treeUuids(node, into = new Set()) {
    if (!node || typeof node !== "object") return into;
    if (node.kind === "task" && node.uuid != null) into.add(String(node.uuid));
    for (const child of Array.isArray(node.children) ? node.children : []) treeUuids(child, into);
    return into;
  }
  function hasOmitted(node) {
    if (!node || typeof node !== "object") return false;
    return (isNum(node.omitted) && node.omitted > 0) || (Array.isArray(node.children) && node.children.some(hasOmitted));
  }

  async function viewWorkflow(view, [id], params) {
    setTitle("Workflow " + id);
    loading();
    const wanted = parseInt(params.get("members") || "", 10);
    const members = isFinite(wanted) ? Math.min(WORKFLOW_MAX_MEMBERS, Math.max(0, wanted)) : WORKFLOW_MEMBERS;
    const path = "/workflows/" + seg(id) + "?members=" + members;
    let data;
    try {
      data = await getJSON(path, view);
    } catch (e) {
      if (view.alive() && workflowsUnavailable(e)) return;
      throw e;
    }
    if (!view.alive()) return;

    const summary = h("section", { id: "workflow-summary" });
    const tree = h("ul", { id: "workflow-tree", class: "wf-tree" });
    const more = h("p", { class: "small", id: "workflow-more" });
    let uuids = new Set();
    let status = null;
    let shown = null;
    function fill(d) {
      // A reload that changed nothing leaves the page as it is.
      const signature = JSON.stringify(d);
      if (signature === shown) return;
      shown = signature;
      const w = d.workflow || {};
      status = w.status;
      summary.replaceChildren(dl([
        ["ID", h("span", { class: "mono", id: "workflow-id" }, w.id == null ? DASH : w.id)],
        ["Status", h("span", { id: "workflow-status", class: "status-" + String(w.status).replace(/[^a-z_-]/gi, "") }, statusBadge(w.status))],
        ["Policy", h("span", { id: "workflow-policy" }, w.policy == null ? DASH : w.policy)],
        ["Tasks", fmtNum(w.tasks)],
        ["Created", when(w.created_at)],
        ["Updated", when(w.updated_at)],
        ["Result", w.result == null ? h("span", { class: "muted", id: "workflow-result" }, DASH) : pre(json(w.result), { id: "workflow-result", class: "code inline" })],
        w.error == null ? null : [w.status === "success" ? "Note" : "Error", h("span", { id: "workflow-error", class: "break" + (w.status === "success" ? "" : " bad-text") }, w.error)],
      ]));
      tree.replaceChildren(workflowTreeView(d.tree));
      uuids = treeUuids(d.tree);
      more.replaceChildren(...(hasOmitted(d.tree) && members < WORKFLOW_MAX_MEMBERS
        ? [`At most ${members} members of each group are shown. `, link(`/workflows/${seg(id)}?members=${WORKFLOW_MAX_MEMBERS}`, `Show up to ${WORKFLOW_MAX_MEMBERS}`)]
        : []));
    }
    fill(data);
    setContent(
      h("p", {}, link("/workflows", "← Workflows", { class: "small" })),
      summary,
      h("section", {}, h("h2", {}, "Tree"), h("p", { class: "muted small" }, "Read-only. Each task links to its record."), more,
        h("div", { class: "wf-wrap" }, tree)));

    // Live: reload when one of its tasks changed, or while it runs and any
    // task changed (members past the limit, or the next steps' records).
    const reload = throttledReload(view, async () => {
      const fresh = await getJSON(path, view);
      if (view.alive()) fill(fresh);
    }, 1000);
    startLive(view, (u) => {
      if (!u.recent.length) return;
      if (status === "process" || u.recent.some((t) => uuids.has(String(t.uuid)))) reload();
    }, PAGE_SIZE);
  }

  // ---------------------------------------------------------------- schedules

  async function viewSchedules(view) {
    setTitle("Schedules");
    loading();
    const data = await getJSON("/schedules", view);
    if (!view.alive()) return;
    if (data.error) showError("Schedules: " + data.error);
    if (data.available === false) {
      setContent(h("p", { class: "muted empty", id: "schedules-unavailable" },
        "no State store configured: schedules are kept in the State store (see docs/scheduling.md)."));
      return;
    }
    const entries = Array.isArray(data.entries) ? data.entries : [];
    const table = h("table", { id: "schedules", class: "data" },
      h("thead", {}, h("tr", {}, ["Name", "Task", "Queue", "Schedule", "Last tick", "Next tick", "Last submitted by", "Last submitted at"]
        .map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, entries.map((e) => h("tr", { dataset: { schedule: e.name } },
        h("td", {}, trunc(e.name, "name")),
        h("td", {}, trunc(e.task_name, "name")),
        h("td", {}, trunc(e.queue, "queue")),
        h("td", { class: "mono" }, trunc(e.schedule, "schedule")),
        h("td", {}, when(e.last_tick)),
        h("td", {}, when(e.next_tick)),
        h("td", { class: "mono" }, trunc(e.last_submitted_by, "worker")),
        h("td", {}, when(e.last_submitted_at))))));
    setContent(entries.length ? h("div", { class: "table-wrap" }, table) : [hide(table), h("p", { class: "muted empty" }, "No schedules.")]);
  }

  // ---------------------------------------------------------------- state

  async function viewState(view, [namespace, key]) {
    const crumbs = [link("/state", "State")];
    if (namespace != null) crumbs.push(" / ", key == null ? h("span", {}, namespace) : link("/state/" + seg(namespace), namespace));
    if (key != null) crumbs.push(" / ", h("span", {}, key));
    setTitle(key != null ? `State: ${namespace} / ${key}` : namespace != null ? `State: ${namespace}` : "State");
    loading();
    const breadcrumbs = h("nav", { class: "crumbs small", "aria-label": "State path" }, crumbs);
    const note = h("p", { class: "muted small" }, "Read-only.");

    const unavailable = (data) => {
      if (data.available !== false) return false;
      setContent(h("p", { class: "muted empty", id: "state-unavailable" }, "no State store configured"));
      return true;
    };
    if (namespace == null) {
      const data = await getJSON("/state", view);
      if (!view.alive() || unavailable(data)) return;
      const list = Array.isArray(data.namespaces) ? data.namespaces : [];
      const table = h("table", { id: "state", class: "data narrow" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Namespace"))),
        h("tbody", {}, list.map((ns) => h("tr", { dataset: { namespace: ns } },
          h("td", {}, link("/state/" + seg(ns), trunc(ns, "name")))))));
      setContent(note, list.length ? h("div", { class: "table-wrap" }, table) : [hide(table), h("p", { class: "muted empty" }, "No namespaces.")]);
      return;
    }
    // A null key is the namespace's keyless state: its fields are at ?keyless=1.
    const keyless = key == null && new URLSearchParams(location.search).has("keyless");
    if (key == null && !keyless) {
      const data = await getJSON("/state/" + seg(namespace), view);
      if (!view.alive() || unavailable(data)) return;
      const keys = Array.isArray(data.keys) ? data.keys : [];
      const table = h("table", { id: "state", class: "data narrow" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Key"))),
        h("tbody", {}, keys.map((k) => h("tr", { dataset: { key: k == null ? "" : k } },
          h("td", {}, k == null
            ? link("/state/" + seg(namespace) + "?keyless=1", "(no key)")
            : link("/state/" + seg(namespace) + "/" + seg(k), trunc(k, "name")))))));
      setContent(breadcrumbs, note,
        data.truncated ? h("p", { class: "warning", id: "state-truncated" }, `Only the first ${keys.length} keys are listed.`) : null,
        keys.length ? h("div", { class: "table-wrap" }, table) : [hide(table), h("p", { class: "muted empty" }, "No keys.")]);
      return;
    }
    const data = await getJSON("/state/" + seg(namespace) + (keyless ? "?keyless=1" : "/" + seg(key)), view);
    if (!view.alive() || unavailable(data)) return;
    const fields = data.fields && typeof data.fields === "object" ? Object.entries(data.fields) : [];
    const table = h("table", { id: "state", class: "data" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Value"))),
      h("tbody", {}, fields.map(([k, v]) => h("tr", { dataset: { field: k } },
        h("td", { class: "mono field-name" }, k),
        h("td", {}, pre(json(v), { class: "code inline" }))))));
    setContent(breadcrumbs, note,
      fields.length ? h("div", { class: "table-wrap" }, table) : [hide(table), h("p", { class: "muted empty" }, "No fields.")],
      h("details", {}, h("summary", {}, "Raw JSON"), pre(json(data.fields), { id: "state-json" })));
  }

  // ---------------------------------------------------------------- not found

  async function viewNotFound() {
    setTitle("Not found");
    setContent(h("p", {}, "No such page. ", link("/", "Go to the overview")));
  }

  // ---------------------------------------------------------------- start

  render();
})();
