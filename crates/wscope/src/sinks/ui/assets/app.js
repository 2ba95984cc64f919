// wscope's web UI: the page's script.
//
// It opens the UI's WebSocket (docs/UI.md), keeps every event it is sent
// (docs/FORMAT.md) and shows them in three places: the connections list,
// a virtualized messages table (fixed row height, only the rows in view
// exist in the DOM, so 100,000 events stay responsive) and a detail pane.
//
// Security: the page runs under a strict CSP, and payloads, headers, URLs
// and every other string that came from the wire are put into the page
// with textContent only, never as HTML. Styles are set through the CSSOM
// (element.style.x), which the CSP allows, never as style attributes.
"use strict";

(() => {
  // ---------------------------------------------------------------------
  // Small helpers

  /** Builds an element: el("span", {class: "x", title: "t"}, child...).
   * Children that are strings become text nodes, so nothing is parsed. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [name, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (name === "class") node.className = value;
        else if (name === "text") node.textContent = value;
        else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
        else if (name === "dataset") Object.assign(node.dataset, value);
        else node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);

  function pad(n, width) {
    return String(n).padStart(width, "0");
  }

  /** `14:03:07.123` in local time, from microseconds since the epoch. */
  function clockTime(ts) {
    const d = new Date(Math.floor(ts / 1000));
    return `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.${pad(d.getMilliseconds(), 3)}`;
  }

  /** The full date and time with microseconds, for tooltips. */
  function fullTime(ts) {
    const d = new Date(Math.floor(ts / 1000));
    return `${d.toISOString().replace("Z", "")}${pad(ts % 1000, 3)}Z`;
  }

  /** A duration in microseconds, short: `+0.004s`, `+12.345s`, `+3m04.5s`. */
  function relTime(us) {
    const sign = us < 0 ? "-" : "+";
    us = Math.abs(us);
    const s = us / 1e6;
    if (s < 60) return `${sign}${s.toFixed(3)}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${sign}${m}m${(s - m * 60).toFixed(1).padStart(4, "0")}s`;
    const h = Math.floor(m / 60);
    return `${sign}${h}h${pad(m % 60, 2)}m`;
  }

  /** A duration for humans: `450 µs`, `12 ms`, `3.2 s`, `5 min 3 s`. */
  function duration(us) {
    if (us < 1000) return `${us} µs`;
    if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 1 : 0)} ms`;
    const s = us / 1e6;
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.floor(s - m * 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function bytesHuman(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function base64ToBytes(b64) {
    try {
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return bytes;
    } catch {
      return new Uint8Array(0);
    }
  }

  const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

  /** Classic hex dump: offset, 16 bytes in two groups of 8, printable ASCII. */
  function hexdump(bytes, limit) {
    const end = Math.min(bytes.length, limit);
    // Four hex digits of offset while they suffice: the dump fits the pane.
    const width = bytes.length <= 0x10000 ? 4 : 8;
    const lines = [];
    for (let off = 0; off < end; off += 16) {
      let hex = "";
      let ascii = "";
      for (let i = 0; i < 16; i++) {
        const at = off + i;
        if (i === 8) hex += " ";
        if (at < end) {
          const b = bytes[at];
          hex += HEX[b] + " ";
          ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
        } else {
          hex += "   ";
        }
      }
      lines.push(`${off.toString(16).padStart(width, "0")}  ${hex} |${ascii}|`);
    }
    return lines.join("\n");
  }

  /** The first bytes as spaced hex, for one-line previews. */
  function hexPreview(bytes, max) {
    const parts = [];
    for (let i = 0; i < Math.min(bytes.length, max); i++) parts.push(HEX[bytes[i]]);
    return parts.join(" ") + (bytes.length > max ? " …" : "");
  }

  /** Copies text to the clipboard; false when the browser refused. */
  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      const area = el("textarea", { class: "offscreen", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      let ok = false;
      try {
        ok = document.execCommand("copy");
      } catch {
        ok = false;
      }
      area.remove();
      return ok;
    }
  }

  // ---------------------------------------------------------------------
  // Close codes (RFC 6455 §7.4 and the IANA registry), for the connection
  // list, the close box and close events that came without a meaning.

  const CLOSE_CODES = {
    1000: ["Normal Closure", "the purpose of the connection was fulfilled"],
    1001: ["Going Away", "a server shutting down or a browser leaving the page"],
    1002: ["Protocol Error", "the endpoint saw a protocol error"],
    1003: ["Unsupported Data", "a type of data the endpoint cannot accept"],
    1005: ["No Status Received", "the close frame had no code (never sent on the wire)"],
    1006: ["Abnormal Closure", "the connection dropped without a close frame (never sent on the wire)"],
    1007: ["Invalid Payload Data", "data inconsistent with its type, e.g. text that is not UTF-8"],
    1008: ["Policy Violation", "a message that violates the endpoint's policy"],
    1009: ["Message Too Big", "a message too big to process"],
    1010: ["Mandatory Extension", "the client expected an extension the server did not negotiate"],
    1011: ["Internal Error", "the server hit an unexpected condition"],
    1012: ["Service Restart", "the server is restarting"],
    1013: ["Try Again Later", "the server is overloaded; try again later"],
    1014: ["Bad Gateway", "a gateway got an invalid response upstream"],
    1015: ["TLS Handshake", "the TLS handshake failed (never sent on the wire)"],
  };

  /** [name, meaning] of a close code. */
  function closeCodeInfo(code) {
    if (code === undefined || code === null) return ["no code", "the close frame carried no code"];
    if (CLOSE_CODES[code]) return CLOSE_CODES[code];
    if (code >= 3000 && code <= 3999) return ["Registered", "registered by a library or framework (3000-3999)"];
    if (code >= 4000 && code <= 4999) return ["Private use", "application-defined (4000-4999)"];
    return ["Invalid", "not a code a close frame may carry"];
  }

  /** The short name from a `meaning` ("Going Away: the endpoint ...") or the table. */
  function closeName(code, meaning) {
    if (meaning) return meaning.split(":")[0];
    return closeCodeInfo(code)[0];
  }

  /** Codes a close frame may carry (RFC 6455 §7.4.1, §7.4.2). */
  function sendableCloseCode(code) {
    return (
      (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
    );
  }

  // ---------------------------------------------------------------------
  // State

  const DATA_OPCODES = new Set(["text", "binary", "cont"]);
  const CONTROL_OPCODES = new Set(["ping", "pong", "close"]);

  const state = {
    ws: null,
    reconnectDelay: 1000,
    mode: null, // "live" | "offline"
    source: "",
    actions: false,
    historyDone: false,
    /** Every event by its seq: {seq, ev, match}. */
    events: [],
    /** The seqs of the events that can be rows, in arrival order. */
    rowSeqs: [],
    /** The highest seq received, and how many events there are (the
     * server keeps the last million, so seqs need not start at 1). */
    lastSeq: 0,
    eventCount: 0,
    /** Connection id -> Conn. */
    conns: new Map(),
    selectedConn: "*",
    selectedSeq: null,
    showControl: true,
    showFrames: false,
    /** The filter: what the box holds, what was sent, what applies. */
    filter: {
      sent: null,
      applied: "",
      matches: null, // Set of seqs, or null when no filter applies
      boundary: 0, // events up to this seq are judged by `matches`, later ones by their `match`
    },
    /** The rows of the table: seqs. */
    view: [],
    hiddenMatches: 0,
    tail: true,
    newWhilePaused: 0,
    rowHeight: 22,
  };

  /** One connection, as built from its events. */
  class Conn {
    constructor(id) {
      this.id = id;
      this.openSeq = null;
      this.open = null; // the `open` event
      this.failed = null; // the `handshake_failed` event
      this.closed = null; // the `closed` event
      this.url = "";
      this.client = "";
      this.firstTs = null;
      this.lastTs = null;
      this.messagesC2s = 0;
      this.messagesS2c = 0;
      this.rows = 0;
      this.notes = [];
      this.element = null;
      this.dirty = true;
    }

    /** When the connection opened, else its first event. */
    get startTs() {
      return this.open ? this.open.ts : this.firstTs;
    }

    get stateName() {
      if (this.closed) return "closed";
      if (this.failed) return "failed";
      if (this.open) return "open";
      return "pending";
    }

    /** Whether live actions make sense on it. */
    get live() {
      return state.mode === "live" && this.open !== null && this.closed === null && this.failed === null;
    }
  }

  function connFor(id) {
    let conn = state.conns.get(id);
    if (!conn) {
      conn = new Conn(id);
      state.conns.set(id, conn);
      scheduleConnList(true);
    }
    return conn;
  }

  /** Which events get a row in the table. Every kind does; the toggles
   * decide about frames (see `kindVisible`). */
  function isRowEvent(ev) {
    return typeof ev.event === "string";
  }

  /** The control/data-frame toggles. Messages, notes, errors and the
   * connection's lifecycle always show; ping and pong only exist as
   * frames, so "control frames" shows those frames and the close events;
   * "data frames" adds every data frame (and close frames as frames). */
  function kindVisible(ev) {
    switch (ev.event) {
      case "frame":
        if (DATA_OPCODES.has(ev.opcode)) return state.showFrames;
        if (ev.opcode === "close") return state.showFrames && state.showControl;
        if (CONTROL_OPCODES.has(ev.opcode)) return state.showControl;
        return true; // reserved opcodes: always worth seeing
      case "close":
        return state.showControl;
      default:
        return true;
    }
  }

  function filterPasses(rec) {
    const f = state.filter;
    if (!f.matches) return true;
    if (rec.seq <= f.boundary) return f.matches.has(rec.seq);
    // Live events after the answer carry `match`; without it the server has
    // no filter (it only adds `match` while one is set).
    return rec.match !== false;
  }

  function inView(rec) {
    if (state.selectedConn !== "*" && rec.ev.conn !== state.selectedConn) return false;
    if (!filterPasses(rec)) return false;
    if (!kindVisible(rec.ev)) {
      if (state.filter.matches) state.hiddenMatches++;
      return false;
    }
    return true;
  }

  /** Rebuilds the table's rows from every event: on a new selection,
   * filter or toggle. O(events), fine for 100,000. */
  function rebuildView() {
    state.hiddenMatches = 0;
    const view = [];
    for (const seq of state.rowSeqs) {
      if (inView(state.events[seq])) view.push(seq);
    }
    state.view = view;
    state.newWhilePaused = 0;
    table.reset();
  }

  // ---------------------------------------------------------------------
  // Incoming messages

  function resetData() {
    state.events = [];
    state.rowSeqs = [];
    state.lastSeq = 0;
    state.eventCount = 0;
    state.conns = new Map();
    state.view = [];
    state.historyDone = false;
    state.filter.matches = null;
    state.filter.applied = "";
    state.filter.boundary = 0;
    document.body.removeAttribute("data-history");
    state.missed = 0;
    $("lagged").hidden = true;
    connList.clear();
  }

  function onHello(msg) {
    resetData();
    state.mode = msg.mode === "offline" ? "offline" : "live";
    state.actions = msg.actions === true && state.mode === "live";
    state.source = typeof msg.source === "string" ? msg.source : "";
    setStatus(state.mode);
    $("source").textContent = state.source;
    $("source").title = `${state.source}${msg.version ? ` — wscope ${msg.version}` : ""}`;
    document.title = `wscope — ${state.source || state.mode}`;
    table.reset();
    updateActions();
    // A filter typed before a reconnect applies again.
    const expr = $("filter").value.trim();
    state.filter.sent = null;
    if (expr) sendFilter(expr);
  }

  function onEvent(msg) {
    const ev = msg.event;
    if (!ev || typeof msg.seq !== "number") return;
    const rec = { seq: msg.seq, ev, match: typeof msg.match === "boolean" ? msg.match : undefined };
    if (state.events[msg.seq] === undefined) state.eventCount++;
    state.events[msg.seq] = rec;
    if (msg.seq > state.lastSeq) state.lastSeq = msg.seq;

    const conn = connFor(String(ev.conn ?? "?"));
    if (conn.firstTs === null) conn.firstTs = ev.ts;
    conn.lastTs = ev.ts;
    switch (ev.event) {
      case "open":
        conn.open = ev;
        conn.openSeq = msg.seq;
        conn.url = ev.url || conn.url;
        conn.client = ev.client || conn.client;
        break;
      case "handshake_failed":
        conn.failed = ev;
        conn.url = ev.url || conn.url;
        conn.client = ev.client || conn.client;
        break;
      case "closed":
        conn.closed = ev;
        break;
      case "message":
        if (ev.dir === "c2s") conn.messagesC2s++;
        else if (ev.dir === "s2c") conn.messagesS2c++;
        break;
      case "note":
        conn.notes.push(msg.seq);
        break;
      default:
        break;
    }
    conn.dirty = true;
    scheduleConnList(false);

    if (!isRowEvent(ev)) return;
    state.rowSeqs.push(msg.seq);
    conn.rows++;
    if (inView(rec)) {
      state.view.push(msg.seq);
      if (!state.tail) state.newWhilePaused++;
      table.grew();
    }
    // The connection's own detail (no row selected) follows its lifecycle.
    if (state.selectedConn === conn.id && state.selectedSeq === null && ev.event !== "message" && ev.event !== "frame") {
      scheduleDetail();
    }
    if (ev.event === "closed" || ev.event === "open") updateActions();
  }

  function onHistoryEnd(msg) {
    state.historyDone = true;
    document.body.dataset.history = "end";
    document.body.dataset.historyCount = String(msg.count ?? state.eventCount);
    scheduleConnList(true);
    table.grew();
    // After a reconnect the selection is still there: show it again.
    scheduleDetail();
  }

  function onFilterAnswer(msg) {
    // Answers to expressions since replaced are of no interest.
    if (msg.expr !== state.filter.sent) return;
    const box = $("filter-error");
    box.replaceChildren();
    if (msg.ok) {
      box.hidden = true;
      $("filter").classList.remove("invalid");
      state.filter.applied = msg.expr;
      if (msg.expr === "") {
        state.filter.matches = null;
      } else {
        state.filter.matches = new Set(Array.isArray(msg.matches) ? msg.matches : []);
        // Every event sent before this answer is covered by `matches`;
        // later ones carry their own `match`.
        state.filter.boundary = state.lastSeq;
      }
      rebuildView();
      updateExports();
    } else {
      $("filter").classList.add("invalid");
      showFilterError(msg.expr, String(msg.error ?? "invalid filter"), msg.column);
    }
  }

  /** The error under the box: the expression, a caret under the column,
   * and the message, like `wscope read --filter` prints it. */
  function showFilterError(expr, error, column) {
    const box = $("filter-error");
    const chars = Array.from(expr);
    const col = Number.isInteger(column) && column >= 1 ? Math.min(column, chars.length + 1) : null;
    const pre = el("pre", { class: "caret" });
    pre.append(el("span", { class: "expr", text: expr }), "\n");
    if (col !== null) pre.append(el("span", { class: "mark", text: `${" ".repeat(col - 1)}^` }), " ");
    pre.append(el("span", { class: "message", text: error }));
    box.append(pre);
    if (state.filter.applied) {
      box.append(el("div", { class: "muted", text: `still showing: ${state.filter.applied}` }));
    }
    box.dataset.column = col === null ? "" : String(col);
    box.hidden = false;
  }

  function onActionAnswer(msg) {
    const out = $("action-result");
    const op = String(msg.op ?? "action");
    out.className = `action-result ${msg.ok ? "ok" : "failed"}`;
    out.dataset.ok = msg.ok ? "true" : "false";
    out.textContent = msg.ok ? `✓ ${op}: done` : `✗ ${op}: ${String(msg.error ?? "failed")}`;
  }

  /** The page fell behind the live stream and the server dropped events:
   * say so, and offer the whole history again (a new connection). */
  function onLagged(msg) {
    state.missed = (state.missed || 0) + Number(msg.missed || 0);
    $("lagged-text").textContent = `This page fell behind and missed ${state.missed.toLocaleString("en-US")} live event${state.missed === 1 ? "" : "s"}.`;
    $("lagged").hidden = false;
  }

  $("reload").addEventListener("click", () => {
    $("lagged").hidden = true;
    state.missed = 0;
    state.reconnectDelay = 50;
    if (state.ws) state.ws.close(); // reconnects and gets the history again
  });

  function onMessage(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    dispatch(msg);
  }

  function dispatch(msg) {
    switch (msg.type) {
      case "batch":
        // Several messages in one (not in docs/UI.md yet): Chromium spends
        // ~100 µs on each WebSocket message, so a history of 100,000
        // events loads ~20 times faster in batches of 512.
        if (Array.isArray(msg.messages)) for (const inner of msg.messages) if (inner && inner.type !== "batch") dispatch(inner);
        break;
      case "hello":
        onHello(msg);
        break;
      case "event":
        onEvent(msg);
        break;
      case "history_end":
        onHistoryEnd(msg);
        break;
      case "filter":
        onFilterAnswer(msg);
        break;
      case "action":
        onActionAnswer(msg);
        break;
      case "lagged":
        onLagged(msg);
        break;
      case "error":
        // The server did not understand a request of ours.
        onActionAnswer({ ok: false, op: "request", error: msg.error });
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------------
  // The UI's WebSocket

  function setStatus(name) {
    const status = $("status");
    status.dataset.state = name;
    status.textContent = name;
    const titles = {
      live: "Connected: events appear as they happen",
      offline: "Showing a record file",
      disconnected: "The connection to wscope dropped; retrying",
      connecting: "Connecting to wscope…",
    };
    status.title = titles[name] || "";
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // The UI's cookie goes along: the token is never in a URL the page makes.
    const url = `${scheme}//${location.host}/ws`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      retry();
      return;
    }
    state.ws = ws;
    ws.addEventListener("open", () => {
      state.reconnectDelay = 1000;
    });
    ws.addEventListener("message", (e) => {
      if (typeof e.data === "string") onMessage(e.data);
    });
    ws.addEventListener("close", () => {
      if (state.ws !== ws) return;
      state.ws = null;
      setStatus("disconnected");
      updateActions();
      retry();
    });
  }

  function retry() {
    const delay = state.reconnectDelay;
    state.reconnectDelay = Math.min(delay * 2, 10000);
    setTimeout(connect, delay);
  }

  function send(obj) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(obj));
    return true;
  }

  // ---------------------------------------------------------------------
  // Row texts

  /** The `type` column. */
  function rowType(ev) {
    switch (ev.event) {
      case "message":
        return ev.opcode || "message";
      case "frame":
        return DATA_OPCODES.has(ev.opcode) ? `frame ${ev.opcode}${ev.fin ? "" : " …"}` : ev.opcode || "frame";
      case "handshake_failed":
        return "refused";
      default:
        return ev.event;
    }
  }

  function payloadPreview(payload) {
    if (!payload) return "";
    if (typeof payload.text === "string") {
      const cut = payload.text.length > 300 ? payload.text.slice(0, 300) : payload.text;
      return cut.replace(/\s+/g, " ") + (payload.truncated ? " …" : "");
    }
    if (typeof payload.base64 === "string") {
      // Only the first bytes are decoded for the preview.
      const bytes = base64ToBytes(payload.base64.slice(0, 64));
      return hexPreview(bytes, 24);
    }
    return "";
  }

  /** The one-line preview of any event. */
  function rowPreview(ev) {
    switch (ev.event) {
      case "message":
      case "frame": {
        const text = payloadPreview(ev.payload);
        if (ev.event === "frame" && ev.opcode === "close") {
          const close = closeFramePayload(ev.payload);
          if (!close || close.code === null) return "close frame, no code";
          return `close frame ${close.code} ${closeName(close.code)}${close.reason ? ` — ${close.reason}` : ""}`;
        }
        return text;
      }
      case "close": {
        const code = ev.code ?? "no code";
        const name = ev.code === undefined ? "" : ` ${closeName(ev.code, ev.meaning)}`;
        return `${code}${name}${ev.reason ? ` — ${ev.reason}` : ""}`;
      }
      case "closed":
        return `closed ${ev.code} ${closeName(ev.code, ev.meaning)}${ev.reason ? ` — ${ev.reason}` : ""}, by ${ev.by}${ev.clean ? "" : ", not clean"}`;
      case "open":
        return `open ${ev.url ?? ""}${ev.subprotocol ? ` (${ev.subprotocol})` : ""}`;
      case "handshake_failed":
        return `${ev.status ?? ""} ${ev.diagnosis ?? ""}`.trim();
      case "note":
        return ev.text ?? "";
      case "error":
        return ev.message ?? "";
      default:
        return JSON.stringify(ev).slice(0, 200);
    }
  }

  function rowLength(ev) {
    if (ev.payload && typeof ev.payload.len === "number") return String(ev.payload.len);
    return "";
  }

  // ---------------------------------------------------------------------
  // The messages table, virtualized: a spacer as tall as every row, and a
  // pool of absolutely positioned row elements reused for the rows in view.

  const table = (() => {
    const container = $("messages");
    const spacer = $("spacer");
    const pool = []; // row elements
    const OVERSCAN = 8;
    let scheduled = false;
    let expectedTop = -1; // scrollTop we set ourselves, to tell it from the user's

    function makeRow() {
      const row = el(
        "div",
        { class: "row" },
        el("span", { class: "c-time" }),
        el("span", { class: "c-rel" }),
        el("span", { class: "c-conn" }),
        el("span", { class: "c-dir" }),
        el("span", { class: "c-op" }),
        el("span", { class: "c-len" }),
        el("span", { class: "c-preview" }),
      );
      row.seq = -1;
      row.hidden = true;
      container.append(row);
      return row;
    }

    function fillRow(row, rec) {
      const ev = rec.ev;
      const cells = row.children;
      const conn = state.conns.get(String(ev.conn));
      const start = conn ? conn.startTs : null;
      cells[0].textContent = clockTime(ev.ts);
      cells[0].title = fullTime(ev.ts);
      cells[1].textContent = start === null ? "" : relTime(ev.ts - start);
      cells[2].textContent = ev.conn ?? "";
      cells[3].textContent = ev.dir === "c2s" ? "→" : ev.dir === "s2c" ? "←" : "·";
      cells[3].title = ev.dir === "c2s" ? "client → server" : ev.dir === "s2c" ? "server → client" : "";
      cells[4].textContent = rowType(ev);
      cells[5].textContent = rowLength(ev);
      cells[6].textContent = rowPreview(ev);
      let cls = `row ev-${ev.event}`;
      if (ev.dir) cls += ` ${ev.dir}`;
      if (ev.event === "frame") cls += CONTROL_OPCODES.has(ev.opcode) ? " control" : " data-frame";
      if (ev.event === "frame" && Array.isArray(ev.violations) && ev.violations.length) cls += " violation";
      if (ev.payload && ev.payload.truncated) cls += " truncated";
      row.className = cls;
      row.dataset.seq = String(rec.seq);
      row.dataset.conn = String(ev.conn ?? "");
    }

    function render() {
      scheduled = false;
      const rowH = state.rowHeight;
      const total = state.view.length;
      spacer.style.height = `${total * rowH}px`;
      container.dataset.rows = String(total);
      // For tests and scripts: the filter the rows reflect.
      container.dataset.filter = state.filter.matches ? state.filter.applied : "";
      $("empty").hidden = total > 0;
      $("empty").textContent = emptyText();
      if (state.tail && total > 0) {
        const bottom = Math.max(0, total * rowH - container.clientHeight);
        if (Math.abs(container.scrollTop - bottom) > 1) container.scrollTop = bottom;
        expectedTop = container.scrollTop;
      }
      const top = container.scrollTop;
      const first = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
      const last = Math.min(total, Math.ceil((top + container.clientHeight) / rowH) + OVERSCAN);
      const needed = last - first;
      while (pool.length < needed) pool.push(makeRow());
      for (let i = 0; i < pool.length; i++) {
        const row = pool[i];
        const index = first + i;
        if (index >= last) {
          if (!row.hidden) {
            row.hidden = true;
            row.seq = -1;
            row.removeAttribute("data-seq");
          }
          continue;
        }
        const seq = state.view[index];
        if (row.seq !== seq || row.dirtyIndex !== index) {
          fillRow(row, state.events[seq]);
          row.seq = seq;
          row.dirtyIndex = index;
          row.style.transform = `translateY(${index * rowH}px)`;
        }
        row.hidden = false;
        row.classList.toggle("selected", seq === state.selectedSeq);
      }
      updateFoot();
    }

    function schedule() {
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(render);
    }

    container.addEventListener("scroll", () => {
      if (Math.abs(container.scrollTop - expectedTop) > 1) {
        const atBottom = container.scrollTop + container.clientHeight >= container.scrollHeight - state.rowHeight;
        if (state.tail && !atBottom) setTail(false);
        else if (!state.tail && atBottom && state.view.length > 0) setTail(true);
        expectedTop = -1;
      }
      schedule();
    });
    window.addEventListener("resize", schedule);

    container.addEventListener("click", (e) => {
      const row = e.target.closest(".row");
      if (row && row.dataset.seq) selectRow(Number(row.dataset.seq));
    });

    container.addEventListener("keydown", (e) => {
      if (!state.view.length) return;
      let index = state.selectedSeq === null ? -1 : state.view.indexOf(state.selectedSeq);
      const page = Math.max(1, Math.floor(container.clientHeight / state.rowHeight) - 1);
      if (e.key === "ArrowDown") index = Math.min(state.view.length - 1, index + 1);
      else if (e.key === "ArrowUp") index = Math.max(0, index - 1);
      else if (e.key === "PageDown") index = Math.min(state.view.length - 1, index + page);
      else if (e.key === "PageUp") index = Math.max(0, index - page);
      else if (e.key === "Home") index = 0;
      else if (e.key === "End") index = state.view.length - 1;
      else return;
      e.preventDefault();
      selectRow(state.view[index]);
      scrollToIndex(index);
    });

    function scrollToIndex(index) {
      const rowH = state.rowHeight;
      const top = index * rowH;
      if (top < container.scrollTop) container.scrollTop = top;
      else if (top + rowH > container.scrollTop + container.clientHeight) {
        container.scrollTop = top + rowH - container.clientHeight;
      }
      schedule();
    }

    return {
      /** The view changed wholesale. */
      reset() {
        for (const row of pool) row.seq = -1;
        if (!state.tail) {
          const max = Math.max(0, state.view.length * state.rowHeight - container.clientHeight);
          if (container.scrollTop > max) container.scrollTop = max;
        }
        schedule();
      },
      /** Rows were appended. */
      grew: schedule,
      refresh: schedule,
      scrollToIndex,
      scrollToBottom() {
        container.scrollTop = container.scrollHeight;
        schedule();
      },
    };
  })();

  function emptyText() {
    if (!state.eventCount) return state.historyDone ? "No events yet." : "Waiting for events…";
    if (state.filter.matches) return "Nothing matches the filter here.";
    return "No rows for this selection.";
  }

  function updateFoot() {
    const total = state.view.length;
    let text = `${total.toLocaleString("en-US")} row${total === 1 ? "" : "s"}`;
    if (state.filter.matches) text += ` matching ${state.filter.applied}`;
    if (state.filter.matches && state.hiddenMatches) {
      text += ` (${state.hiddenMatches.toLocaleString("en-US")} more hidden by the frame toggles)`;
    }
    text += ` · ${state.eventCount.toLocaleString("en-US")} events`;
    $("row-count").textContent = text;
    $("tail-note").textContent = state.tail
      ? ""
      : state.newWhilePaused
        ? `paused — ${state.newWhilePaused.toLocaleString("en-US")} new below`
        : "paused";
  }

  function setTail(on) {
    state.tail = on;
    if (on) state.newWhilePaused = 0;
    const button = $("pause");
    button.textContent = on ? "Pause" : "Resume";
    button.classList.toggle("paused", !on);
    button.setAttribute("aria-pressed", on ? "false" : "true");
    button.title = on ? "Live tail: keep the newest row in view (click to pause)" : "Paused: click to follow new rows again";
    if (on) table.scrollToBottom();
    else table.refresh();
  }

  // ---------------------------------------------------------------------
  // Connections list

  const connList = (() => {
    const list = $("connections");
    let allItem = null;
    let scheduled = false;
    let full = false;

    function makeAll() {
      const item = el(
        "li",
        { class: "conn all", dataset: { conn: "*" }, tabindex: "0" },
        el("div", { class: "conn-line" }, el("span", { class: "conn-id", text: "All" }), el("span", { class: "conn-state muted" })),
        el("div", { class: "conn-meta muted", text: "every connection" }),
      );
      return item;
    }

    function makeItem(conn) {
      const item = el(
        "li",
        { class: "conn", dataset: { conn: conn.id }, tabindex: "0" },
        el(
          "div",
          { class: "conn-line" },
          el("span", { class: "conn-id" }),
          el("span", { class: "conn-state" }),
          el("span", { class: "conn-age muted" }),
        ),
        el("div", { class: "conn-url" }),
        el("div", { class: "conn-meta muted" }),
        el("div", { class: "conn-counts muted" }),
      );
      return item;
    }

    function connAge(conn) {
      if (conn.closed) return `lasted ${duration(conn.closed.duration_us ?? 0)}`;
      if (conn.failed) return "";
      const start = conn.startTs;
      if (start === null) return "";
      if (state.mode === "live") return `${duration(Math.max(0, Date.now() * 1000 - start))} old`;
      return `${duration(Math.max(0, conn.lastTs - start))} recorded`;
    }

    function fillItem(conn) {
      const item = conn.element;
      const [line, urlLine, meta, counts] = item.children;
      const [idSpan, stateSpan, ageSpan] = line.children;
      idSpan.textContent = conn.id;
      let stateText = conn.stateName;
      let stateTitle = "";
      if (conn.closed) {
        const c = conn.closed;
        stateText = `closed ${c.code} ${closeName(c.code, c.meaning)}`;
        stateTitle = `${c.meaning || closeCodeInfo(c.code).join(": ")}${c.reason ? `\nreason: ${c.reason}` : ""}\nclosed by ${c.by}${c.clean ? ", clean" : ", not clean"}`;
      } else if (conn.failed) {
        stateText = `refused ${conn.failed.status ?? ""}`.trim();
        stateTitle = conn.failed.diagnosis ?? "";
      } else if (conn.open && state.mode === "offline") {
        stateText = "open at the end";
        stateTitle = "the record ends before this connection closed";
      }
      stateSpan.textContent = stateText;
      stateSpan.title = stateTitle;
      stateSpan.className = `conn-state state-${conn.stateName}${state.mode === "offline" && conn.stateName === "open" ? " at-end" : ""}`;
      ageSpan.textContent = connAge(conn);
      let path = conn.url;
      try {
        const u = new URL(conn.url);
        path = `${u.pathname}${u.search}`;
        urlLine.title = conn.url;
      } catch {
        urlLine.title = conn.url;
      }
      urlLine.textContent = path || "(no handshake yet)";
      const bits = [];
      if (conn.client) bits.push(conn.client);
      if (conn.open && conn.open.subprotocol) bits.push(`proto ${conn.open.subprotocol}`);
      if (conn.open && Array.isArray(conn.open.extensions) && conn.open.extensions.length) {
        bits.push(conn.open.extensions.join(", "));
      }
      meta.textContent = bits.join(" · ");
      const c2s = conn.closed ? conn.closed.messages_c2s ?? conn.messagesC2s : conn.messagesC2s;
      const s2c = conn.closed ? conn.closed.messages_s2c ?? conn.messagesS2c : conn.messagesS2c;
      counts.textContent = `→ ${c2s}  ← ${s2c} messages`;
      counts.title = conn.closed
        ? `${bytesHuman(conn.closed.bytes_c2s ?? 0)} client → server, ${bytesHuman(conn.closed.bytes_s2c ?? 0)} server → client`
        : "";
      item.classList.toggle("closed", conn.closed !== null || conn.failed !== null);
      item.classList.toggle("selected", state.selectedConn === conn.id);
      conn.dirty = false;
    }

    function render() {
      scheduled = false;
      if (!allItem) {
        allItem = makeAll();
        allItem.classList.toggle("selected", state.selectedConn === "*");
        list.append(allItem);
      }
      let open = 0;
      for (const conn of state.conns.values()) {
        if (!conn.element) {
          conn.element = makeItem(conn);
          list.append(conn.element);
        }
        if (conn.dirty || full) fillItem(conn);
        if (conn.live) open++;
      }
      full = false;
      allItem.classList.toggle("selected", state.selectedConn === "*");
      const total = state.conns.size;
      allItem.children[0].children[1].textContent = `${total}`;
      $("conn-count").textContent = state.mode === "live" ? `${open} open / ${total}` : `${total}`;
    }

    list.addEventListener("click", (e) => {
      const item = e.target.closest(".conn");
      if (item) selectConn(item.dataset.conn);
    });
    list.addEventListener("keydown", (e) => {
      const item = e.target.closest(".conn");
      if (!item) return;
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        selectConn(item.dataset.conn);
      } else if (e.key === "ArrowDown" && item.nextElementSibling) {
        e.preventDefault();
        item.nextElementSibling.focus();
      } else if (e.key === "ArrowUp" && item.previousElementSibling) {
        e.preventDefault();
        item.previousElementSibling.focus();
      }
    });

    // Ages of open connections move on by themselves.
    setInterval(() => {
      if (state.mode !== "live") return;
      for (const conn of state.conns.values()) if (conn.live) conn.dirty = true;
      schedule(false);
    }, 1000);

    function schedule(everything) {
      if (everything) full = true;
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(render);
    }

    return {
      schedule,
      clear() {
        list.replaceChildren();
        allItem = null;
      },
    };
  })();

  function scheduleConnList(everything) {
    connList.schedule(everything);
  }

  function selectConn(id) {
    if (!id) return;
    state.selectedConn = id;
    if (state.selectedSeq !== null) {
      const rec = state.events[state.selectedSeq];
      if (id !== "*" && (!rec || rec.ev.conn !== id)) state.selectedSeq = null;
    }
    for (const item of $("connections").children) {
      item.classList.toggle("selected", item.dataset.conn === id);
    }
    rebuildView();
    updateActions();
    updateExports();
    scheduleDetail();
  }

  function selectRow(seq) {
    state.selectedSeq = seq;
    table.refresh();
    updateActions();
    scheduleDetail();
  }

  // ---------------------------------------------------------------------
  // Detail pane

  let detailScheduled = false;
  function scheduleDetail() {
    if (detailScheduled) return;
    detailScheduled = true;
    requestAnimationFrame(() => {
      detailScheduled = false;
      renderDetail();
    });
  }

  /** A two-column list of facts; values are text. */
  function facts(pairs) {
    const dl = el("dl", { class: "facts" });
    for (const [name, value, cls] of pairs) {
      if (value === undefined || value === null || value === "") continue;
      dl.append(el("dt", { text: name }), el("dd", { class: cls, text: String(value) }));
    }
    return dl;
  }

  function section(title, ...children) {
    return el("section", { class: "detail-section" }, el("h3", { text: title }), ...children);
  }

  /** Request or response headers as a table, values as text. */
  function headTable(head) {
    const wrap = el("div", { class: "head" });
    if (!head) return wrap;
    wrap.append(el("div", { class: "head-line", text: head.line ?? "" }));
    const table = el("table", { class: "headers" });
    for (const pair of head.headers ?? []) {
      if (!Array.isArray(pair)) continue;
      table.append(el("tr", null, el("th", { text: String(pair[0]) }), el("td", { text: String(pair[1]) })));
    }
    wrap.append(table);
    return wrap;
  }

  /** A JSON number that keeps its source text (JSON.parse would round
   * integers past 2^53). */
  class RawNumber {
    constructor(source, value) {
      this.source = source;
      this.value = value;
    }
  }

  function parseJson(text) {
    const t = text.trimStart();
    if (!(t.startsWith("{") || t.startsWith("["))) return undefined;
    try {
      return JSON.parse(text, (key, value, context) =>
        typeof value === "number" && context && typeof context.source === "string"
          ? new RawNumber(context.source, value)
          : value,
      );
    } catch {
      return undefined;
    }
  }

  /** JSON as a collapsible tree of <details>; children are built when a
   * node is first opened, so a huge payload costs nothing until explored. */
  function jsonTree(value) {
    const root = el("div", { id: "json-tree", class: "json-tree" });
    root.append(jsonNode(null, value, 0));
    return root;
  }

  function jsonLeaf(value) {
    if (value instanceof RawNumber) return el("span", { class: "j-number", text: value.source });
    if (value === null) return el("span", { class: "j-null", text: "null" });
    switch (typeof value) {
      case "string":
        return el("span", { class: "j-string", text: JSON.stringify(value) });
      case "number":
        return el("span", { class: "j-number", text: String(value) });
      case "boolean":
        return el("span", { class: "j-bool", text: String(value) });
      default:
        return el("span", { text: String(value) });
    }
  }

  function jsonKey(key) {
    if (key === null) return null;
    return el("span", { class: typeof key === "number" ? "j-index" : "j-key", text: typeof key === "number" ? String(key) : JSON.stringify(key) });
  }

  function jsonNode(key, value, depth) {
    const isArray = Array.isArray(value);
    const isObject = value !== null && typeof value === "object" && !(value instanceof RawNumber);
    if (!isObject) {
      const line = el("div", { class: "j-line" });
      if (key !== null) line.append(jsonKey(key), ": ");
      line.append(jsonLeaf(value));
      return line;
    }
    const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
    const summary = el("summary", { class: "j-line" });
    if (key !== null) summary.append(jsonKey(key), ": ");
    summary.append(
      el("span", { class: "j-brace", text: isArray ? "[" : "{" }),
      el("span", { class: "j-count muted", text: isArray ? ` ${entries.length} item${entries.length === 1 ? "" : "s"} ` : ` ${entries.length} key${entries.length === 1 ? "" : "s"} ` }),
      el("span", { class: "j-brace", text: isArray ? "]" : "}" }),
    );
    const details = el("details", { class: "j-node" }, summary);
    let built = false;
    const build = () => {
      if (built) return;
      built = true;
      const kids = el("div", { class: "j-children" });
      const SHOW = 500;
      for (const [k, v] of entries.slice(0, SHOW)) kids.append(jsonNode(k, v, depth + 1));
      if (entries.length > SHOW) {
        const more = el("button", { type: "button", class: "link", text: `show ${entries.length - SHOW} more` });
        more.addEventListener("click", () => {
          for (const [k, v] of entries.slice(SHOW)) kids.insertBefore(jsonNode(k, v, depth + 1), more);
          more.remove();
        });
        kids.append(more);
      }
      details.append(kids);
    };
    details.addEventListener("toggle", () => {
      if (details.open) build();
    });
    if (depth < 3 && entries.length <= 100) {
      build();
      details.open = true;
    }
    return details;
  }

  const HEXDUMP_LIMIT = 64 * 1024;

  function payloadSection(ev, rec) {
    const p = ev.payload;
    if (!p) return null;
    const sec = el("section", { class: "detail-section payload" });
    const head = el("div", { class: "payload-head" }, el("h3", { text: "Payload" }));
    const kept = typeof p.text === "string" ? new TextEncoder().encode(p.text).length : typeof p.base64 === "string" ? Math.floor((p.base64.length * 3) / 4) - (p.base64.endsWith("==") ? 2 : p.base64.endsWith("=") ? 1 : 0) : 0;
    head.append(el("span", { class: "muted", text: `${p.len} bytes${p.truncated ? `, ${kept} kept (truncated)` : ""}` }));
    const tools = el("span", { class: "tools" });
    head.append(tools);
    sec.append(head);

    const feedback = el("span", { class: "muted copy-feedback" });
    const copyButton = (label, id, textFn) => {
      const b = el("button", { type: "button", id, text: label });
      b.addEventListener("click", async () => {
        feedback.textContent = (await copyText(textFn())) ? "copied" : "copy refused by the browser";
        setTimeout(() => (feedback.textContent = ""), 1500);
      });
      return b;
    };

    if (typeof p.text === "string") {
      const json = parseJson(p.text);
      tools.append(copyButton("copy text", "copy-text", () => p.text));
      if (json !== undefined) {
        const raw = el("pre", { class: "payload-text", text: p.text, hidden: true });
        const tree = jsonTree(json);
        const toggle = el("button", { type: "button", id: "toggle-raw", text: "raw" });
        toggle.addEventListener("click", () => {
          raw.hidden = !raw.hidden;
          tree.hidden = !tree.hidden;
          toggle.textContent = raw.hidden ? "raw" : "tree";
        });
        tools.append(toggle);
        sec.append(tree, raw);
      } else {
        sec.append(el("pre", { id: "payload-text", class: "payload-text", text: p.text }));
      }
    } else if (typeof p.base64 === "string") {
      const bytes = base64ToBytes(p.base64);
      tools.append(copyButton("copy base64", "copy-base64", () => p.base64));
      const dump = el("pre", { id: "hexdump", class: "hexdump", text: hexdump(bytes, HEXDUMP_LIMIT) });
      sec.append(dump);
      if (bytes.length > HEXDUMP_LIMIT) {
        const more = el("button", { type: "button", class: "link", text: `show all ${bytes.length} bytes` });
        more.addEventListener("click", () => {
          dump.textContent = hexdump(bytes, bytes.length);
          more.remove();
        });
        sec.append(more);
      }
    }
    tools.append(feedback);
    if (canAct(ev.conn) && (ev.event === "message" || (ev.event === "frame" && DATA_OPCODES.has(ev.opcode)))) {
      const resend = el("button", { type: "button", id: "resend", text: "edit & resend" });
      resend.addEventListener("click", () => editAndResend(rec));
      tools.prepend(resend);
    }
    return sec;
  }

  function frameSection(ev) {
    const bits = [
      ["FIN", ev.fin ? "1 (final fragment)" : "0 (more fragments follow)"],
      ["RSV1", ev.rsv1 ? "1 (compressed, permessage-deflate)" : "0"],
      ["RSV2", ev.rsv2 ? "1" : "0"],
      ["RSV3", ev.rsv3 ? "1" : "0"],
      ["opcode", `${ev.opcode} (0x${Number(ev.opcode_bits ?? 0).toString(16)})`],
      ["mask", ev.mask ? `masked, key ${ev.mask}` : "not masked"],
      ["payload length", ev.payload ? `${ev.payload.len}` : ""],
    ];
    const close = ev.opcode === "close" ? closeFramePayload(ev.payload) : null;
    if (close) {
      const code = close.code === null ? "none (an empty close frame)" : `${close.code} ${closeCodeInfo(close.code).join(": ")}`;
      bits.push(["close code", code], ["reason", close.reason]);
    }
    return section("Frame (RFC 6455 §5.2)", facts(bits));
  }

  /** A close frame's code and reason from its payload (RFC 6455 §5.5.1). */
  function closeFramePayload(payload) {
    if (!payload) return null;
    const bytes = typeof payload.text === "string" ? new TextEncoder().encode(payload.text) : base64ToBytes(payload.base64 || "");
    if (bytes.length < 2) return { code: null, reason: "" };
    const code = (bytes[0] << 8) | bytes[1];
    const reason = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(2));
    return { code, reason };
  }

  function violationsSection(ev) {
    if (!Array.isArray(ev.violations) || !ev.violations.length) return null;
    const list = el("ul", { class: "violations" });
    for (const v of ev.violations) {
      list.append(el("li", null, el("span", { class: "section-ref", text: String(v.section ?? "") }), " ", el("span", { text: String(v.text ?? "") })));
    }
    return section("Protocol violations", list);
  }

  function eventSection(rec) {
    const ev = rec.ev;
    const conn = state.conns.get(String(ev.conn));
    const start = conn ? conn.startTs : null;
    const dirText = ev.dir === "c2s" ? "→ client to server" : ev.dir === "s2c" ? "← server to client" : "";
    const pairs = [
      ["event", `${ev.event}  (#${rec.seq})`],
      ["connection", ev.conn],
      ["direction", dirText, ev.dir],
      ["time", `${clockTime(ev.ts)}  ${start === null ? "" : `${relTime(ev.ts - start)} since open`}`],
      ["timestamp", fullTime(ev.ts)],
    ];
    switch (ev.event) {
      case "message":
        pairs.push(["opcode", ev.opcode], ["frames", ev.frames], ["compressed", ev.compressed ? "yes (permessage-deflate)" : "no"]);
        break;
      case "close": {
        const [name, meaning] = closeCodeInfo(ev.code);
        pairs.push(["code", ev.code ?? "none"], ["meaning", ev.meaning || `${name}: ${meaning}`], ["reason", ev.reason]);
        break;
      }
      case "closed":
        pairs.push(
          ["code", ev.code],
          ["meaning", ev.meaning || closeCodeInfo(ev.code).join(": ")],
          ["reason", ev.reason],
          ["closed by", ev.by],
          ["clean", ev.clean ? "yes: both close frames were exchanged" : "no"],
          ["duration", duration(ev.duration_us ?? 0)],
          ["client → server", `${ev.messages_c2s} messages, ${bytesHuman(ev.bytes_c2s ?? 0)}`],
          ["server → client", `${ev.messages_s2c} messages, ${bytesHuman(ev.bytes_s2c ?? 0)}`],
        );
        break;
      case "note":
        pairs.push(["note", ev.text, "note-text"]);
        break;
      case "error":
        pairs.push(["error", ev.message, "error-text"]);
        break;
      case "handshake_failed":
        pairs.push(["url", ev.url], ["status", ev.status], ["diagnosis", ev.diagnosis], ["body", ev.body]);
        break;
      default:
        break;
    }
    return section(ev.event === "handshake_failed" ? "Handshake refused" : "Event", facts(pairs));
  }

  function handshakeSections(conn, openByDefault) {
    const out = [];
    const open = conn.open;
    const failed = conn.failed;
    const info = el("details", { class: "detail-section handshake", open: openByDefault });
    info.append(el("summary", null, el("h3", { text: `Connection ${conn.id}` })));
    const t = (open && open.timings) || {};
    const timing = (v) => (typeof v === "number" ? duration(v) : "");
    info.append(
      facts([
        ["url", conn.url],
        ["client", conn.client],
        ["server", open ? open.server : ""],
        ["subprotocol", open ? open.subprotocol || "none" : ""],
        ["extensions", open ? (open.extensions || []).join(", ") || "none" : ""],
        ["state", conn.closed ? `closed ${conn.closed.code} ${closeName(conn.closed.code, conn.closed.meaning)}` : conn.stateName],
        ["opened", open ? fullTime(open.ts) : ""],
        ["DNS", timing(t.dns_us)],
        ["TCP connect", timing(t.tcp_us)],
        ["TLS", timing(t.tls_us)],
        ["upgrade", timing(t.upgrade_us)],
      ]),
    );
    const head = open || failed;
    if (head && head.request) info.append(el("h4", { text: "Request" }), headTable(head.request));
    if (head && head.response) info.append(el("h4", { text: "Response" }), headTable(head.response));
    if (!head) info.append(el("p", { class: "muted", text: "No handshake recorded for this connection." }));
    if (conn.notes.length) {
      const notes = el("ul", { class: "notes" });
      for (const seq of conn.notes.slice(-50)) {
        const n = state.events[seq];
        if (n) notes.append(el("li", null, el("span", { class: "muted", text: `${clockTime(n.ev.ts)} ` }), el("span", { text: String(n.ev.text ?? "") })));
      }
      info.append(el("h4", { text: "Notes" }), notes);
    }
    out.push(info);
    return out;
  }

  function renderDetail() {
    const pane = $("detail");
    const parts = [];
    const rec = state.selectedSeq === null ? null : state.events[state.selectedSeq];
    if (rec) {
      const ev = rec.ev;
      parts.push(eventSection(rec));
      if (ev.event === "frame") parts.push(frameSection(ev));
      const violations = violationsSection(ev);
      if (violations) parts.push(violations);
      const payload = payloadSection(ev, rec);
      if (payload) parts.push(payload);
      const conn = state.conns.get(String(ev.conn));
      if (conn) parts.push(...handshakeSections(conn, ev.event === "open" || ev.event === "handshake_failed"));
    } else if (state.selectedConn !== "*" && state.conns.has(state.selectedConn)) {
      parts.push(...handshakeSections(state.conns.get(state.selectedConn), true));
    } else {
      parts.push(el("p", { class: "muted", text: "Select a row to see its payload, frame bits and the connection's handshake." }));
    }
    pane.replaceChildren(...parts);
    pane.dataset.seq = rec ? String(rec.seq) : "";
  }

  // ---------------------------------------------------------------------
  // Filter

  let filterTimer = null;

  function sendFilter(expr) {
    if (expr === state.filter.sent) return;
    state.filter.sent = expr;
    if (expr === "") {
      // No filter: nothing to wait for.
      state.filter.matches = null;
      state.filter.applied = "";
      $("filter-error").hidden = true;
      $("filter").classList.remove("invalid");
      rebuildView();
      updateExports();
    }
    send({ op: "filter", expr });
  }

  $("filter").addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      clearTimeout(filterTimer);
      sendFilter($("filter").value.trim());
    } else if (e.key === "Escape") {
      $("filter").value = "";
      clearTimeout(filterTimer);
      sendFilter("");
    }
  });
  $("filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => sendFilter($("filter").value.trim()), 500);
  });

  // ---------------------------------------------------------------------
  // Toggles, tail

  $("show-control").addEventListener("change", (e) => {
    state.showControl = e.target.checked;
    rebuildView();
  });
  $("show-frames").addEventListener("change", (e) => {
    state.showFrames = e.target.checked;
    rebuildView();
  });
  $("pause").addEventListener("click", () => setTail(!state.tail));

  // ---------------------------------------------------------------------
  // Export links: the current view (filter, and the selected connection).

  function exportFilter() {
    const expr = state.filter.matches ? state.filter.applied : "";
    if (state.selectedConn === "*") return expr;
    const byConn = `conn == ${JSON.stringify(state.selectedConn)}`;
    return expr ? `${byConn} && (${expr})` : byConn;
  }

  function updateExports() {
    const expr = exportFilter();
    const query = expr ? `?filter=${encodeURIComponent(expr)}` : "";
    $("export-jsonl").href = `/export.jsonl${query}`;
    $("export-har").href = `/export.har${query}`;
    const what = expr ? `events matching ${expr}` : "every event";
    $("export-jsonl").title = `Record file (JSON Lines) of ${what}`;
    $("export-har").title = `HAR 1.2 of ${what}`;
  }

  // ---------------------------------------------------------------------
  // Actions on a live connection

  /** The connection actions go to: the selected one, else the selected row's. */
  function actionConnId() {
    if (state.selectedConn !== "*") return state.selectedConn;
    const rec = state.selectedSeq === null ? null : state.events[state.selectedSeq];
    return rec ? String(rec.ev.conn) : null;
  }

  function canAct(connId) {
    const conn = state.conns.get(String(connId));
    return state.actions && state.ws !== null && conn !== undefined && conn.live;
  }

  const ACTION_CONTROLS = ["send-to", "send-kind", "send", "send-text", "close-code", "close-reason", "close-to", "close", "reset"];

  function updateActions() {
    const id = actionConnId();
    const conn = id ? state.conns.get(id) : undefined;
    let why = "";
    if (state.mode === "offline") why = "a record file: nothing to act on";
    else if (!state.actions) why = "this wscope does not take actions";
    else if (!state.ws) why = "not connected to wscope";
    else if (!conn) why = "select a connection";
    else if (conn.closed) why = "the connection is closed";
    else if (conn.failed) why = "the handshake failed";
    else if (!conn.open) why = "the connection is not open yet";
    const enabled = why === "";
    for (const name of ACTION_CONTROLS) $(name).disabled = !enabled;
    $("actions").classList.toggle("disabled", !enabled);
    $("actions").hidden = state.mode === "offline";
    $("action-target").textContent = conn ? conn.id : "—";
    $("action-why").textContent = why;
  }

  function actionResult(text, ok) {
    const out = $("action-result");
    out.className = `action-result ${ok ? "pending" : "failed"}`;
    out.dataset.ok = ok ? "" : "false";
    out.textContent = text;
  }

  function doSend() {
    const conn = actionConnId();
    if (!canAct(conn)) return;
    const to = $("send-to").value;
    const kind = $("send-kind").value;
    const body = $("send-text").value;
    const msg = { op: "send", conn, to };
    if (kind === "hex") {
      const hex = body.replace(/0x/gi, "").replace(/[\s,:]/g, "");
      if (!/^([0-9a-fA-F]{2})*$/.test(hex)) {
        actionResult("✗ not hex: pairs of 0-9 a-f, spaces allowed (e.g. 01 ff 7e)", false);
        return;
      }
      msg.hex = hex.toLowerCase();
    } else {
      if (kind === "json") {
        try {
          JSON.parse(body);
        } catch (err) {
          actionResult(`✗ not JSON: ${err.message}`, false);
          return;
        }
      }
      msg.text = body;
    }
    if (send(msg)) actionResult(`sending to the ${to}…`, true);
  }

  function doClose() {
    const conn = actionConnId();
    if (!canAct(conn)) return;
    const code = Number($("close-code").value);
    if (!Number.isInteger(code) || !sendableCloseCode(code)) {
      actionResult(`✗ ${$("close-code").value} is not a code a close frame may carry (1000-1003, 1007-1014, 3000-4999)`, false);
      return;
    }
    const reason = $("close-reason").value;
    if (new TextEncoder().encode(reason).length > 123) {
      actionResult("✗ the reason is longer than 123 bytes (RFC 6455 §5.5)", false);
      return;
    }
    if (send({ op: "close", conn, to: $("close-to").value, code, reason })) actionResult(`closing with ${code}…`, true);
  }

  let resetArmed = null;
  function doReset() {
    const conn = actionConnId();
    if (!canAct(conn)) return;
    // Two clicks, so a stray one does not drop a connection (no confirm():
    // dialogs block the page).
    if (!resetArmed) {
      $("reset").textContent = "Really reset?";
      resetArmed = setTimeout(() => {
        resetArmed = null;
        $("reset").textContent = "Reset";
      }, 3000);
      return;
    }
    clearTimeout(resetArmed);
    resetArmed = null;
    $("reset").textContent = "Reset";
    if (send({ op: "reset", conn })) actionResult("resetting…", true);
  }

  function bytesToHex(bytes) {
    const parts = [];
    for (let i = 0; i < bytes.length; i++) parts.push(HEX[bytes[i]]);
    return parts.join(" ");
  }

  /** Puts a recorded message into the send box, aimed where it went. */
  function editAndResend(rec) {
    const ev = rec.ev;
    const p = ev.payload || {};
    if (state.selectedConn === "*") selectConn(String(ev.conn));
    $("send-to").value = ev.dir === "s2c" ? "client" : "server";
    if (typeof p.text === "string") {
      $("send-kind").value = parseJson(p.text) !== undefined ? "json" : "text";
      $("send-text").value = p.text;
    } else {
      $("send-kind").value = "hex";
      $("send-text").value = bytesToHex(base64ToBytes(p.base64 || ""));
    }
    actionResult(p.truncated ? "⚠ the recorded payload was truncated: only the kept bytes are in the box" : "edit, then Send", true);
    $("send-text").focus();
  }

  $("send").addEventListener("click", doSend);
  $("send-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      doSend();
    }
  });
  $("close").addEventListener("click", doClose);
  $("reset").addEventListener("click", doReset);
  const showCloseMeaning = () => {
    const code = Number($("close-code").value);
    const [name, meaning] = closeCodeInfo(code);
    $("close-meaning").textContent = Number.isInteger(code) && sendableCloseCode(code) ? name : "not sendable";
    $("close-meaning").title = meaning;
  };
  $("close-code").addEventListener("input", showCloseMeaning);

  // ---------------------------------------------------------------------
  // Start

  /** The row height comes from the stylesheet, so the two cannot drift. */
  function measureRowHeight() {
    const probe = el("div", { class: "row" }, el("span", { class: "c-time", text: "00:00:00.000" }));
    probe.hidden = false;
    $("messages").append(probe);
    const h = probe.getBoundingClientRect().height;
    probe.remove();
    if (h >= 10) state.rowHeight = h;
  }

  measureRowHeight();
  showCloseMeaning();
  updateExports();
  updateActions();
  setTail(true);
  connect();
})();
