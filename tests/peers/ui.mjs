// Drives wscope's web UI in headless Chromium (Debian's package, through
// playwright-core) and reports what the page showed, for the integration
// tests in crates/wscope/tests/ and for BENCHMARKS.md.
//
// Usage: node ui.mjs --url http://127.0.0.1:PORT/?token=T --scenario NAME
//                    [--shots DIR] [--timeout MS] [scenario options]
//
// Scenarios (each prints ONE JSON object on stdout; exit status 0 when the
// scenario ran to its end, 1 with {"error": ...} when it could not):
//
//   offline  a record file (`wscope ui FILE`): waits for the history, counts
//            rows, selects a JSON message (tree) and a binary one (hex
//            dump), types a bad filter then a good one.
//            --bad-filter EXPR (default `opcode == txt`)
//            --good-filter EXPR (default `opcode == binary`)
//            shots: ui-main.png, ui-detail.png, ui-filter-error.png
//   live     a live proxy (`wscope proxy --ui`): waits for an open
//            connection, selects it, sends a text message, closes it.
//            --conn ID (default: the first open one) --to client|server
//            (default server) --text TEXT (default "hello from the ui")
//            --code N (default 4001) --reason TEXT (default "from ui")
//            --close-to client|server|both (default both)
//            shots: ui-live.png, ui-live-closed.png
//   xss      finds the row whose payload holds --needle (default
//            `<img src=x onerror=`), checks it shows as text and that no
//            img element exists in #messages, #detail or the page;
//            "script_ran" is true when the payload's alert() opened a
//            dialog, "csp_violations" lists what CSP blocked.
//            shots: ui-xss.png
//   hijack   serves a page from another origin (a Node http server on
//            another port) that tries the UI's WebSocket with the right
//            token; reports whether it opened (it must not), and, as a
//            control, whether the UI's own page can.
//   perf     a big record file: load time, time to jump to the bottom,
//            time to apply a filter and to clear it (no assertions).
//            --perf-filter EXPR (default `dir == c2s`)
//
// Every report has "scenario", "status" (the #status text), "errors"
// (page errors and console errors, CSP violations included) and
// "screenshots" (the files written).

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { chromium } from "playwright-core";

const options = {};
for (let i = 2; i < process.argv.length; i += 2) {
  options[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
}
const url = options.url;
const scenario = options.scenario;
const shotsDir = options.shots || null;
const timeout = Number(options.timeout || 30000);
if (!url || !scenario) {
  console.error("usage: node ui.mjs --url URL --scenario offline|live|xss|hijack|perf [--shots DIR]");
  process.exit(2);
}
if (shotsDir) fs.mkdirSync(shotsDir, { recursive: true });

const report = { scenario, screenshots: [], errors: [] };

// ---------------------------------------------------------------------
// Page helpers

/** Notes in the report which wait ran out; the test asserts on what the
 * page showed after it (so the timeout is not hidden). */
function timedOut(report, what) {
  report.timed_out = [...(report.timed_out ?? []), what];
}

async function shoot(tab, name) {
  if (!shotsDir) return;
  const file = path.join(shotsDir, name);
  await tab.screenshot({ path: file });
  report.screenshots.push(file);
}

/** Two animation frames: whatever the page scheduled has been drawn. */
async function frames(tab) {
  await tab.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
}

async function waitHistory(tab, ms = timeout) {
  await tab.waitForSelector('body[data-history="end"]', { timeout: ms });
  await frames(tab);
}

/** The rows in the DOM (the virtualized table only has those in view). */
async function visibleRows(tab) {
  return tab.evaluate(() =>
    Array.from(document.querySelectorAll("#messages .row[data-seq]"))
      .filter((row) => !row.hidden)
      .map((row) => {
        const cell = (cls) => row.querySelector(`.${cls}`).textContent;
        return {
          seq: Number(row.dataset.seq),
          conn: cell("c-conn"),
          dir: cell("c-dir"),
          type: cell("c-op"),
          len: cell("c-len"),
          preview: cell("c-preview"),
          time: cell("c-time"),
          rel: cell("c-rel"),
          text: Array.from(row.children).map((c) => c.textContent).join(" | "),
        };
      })
      .sort((a, b) => a.seq - b.seq),
  );
}

async function rowCount(tab) {
  return Number(await tab.getAttribute("#messages", "data-rows"));
}

async function scrollMessages(tab, to) {
  return tab.evaluate((to) => {
    const m = document.getElementById("messages");
    const before = m.scrollTop;
    if (to === "top") m.scrollTop = 0;
    else if (to === "bottom") m.scrollTop = m.scrollHeight;
    else m.scrollTop += m.clientHeight - 22;
    return m.scrollTop !== before;
  }, to);
}

/** Scrolls the table from the top until a row passes `test`. */
async function findRow(tab, test) {
  await scrollMessages(tab, "top");
  for (let page = 0; page < 5000; page++) {
    await frames(tab);
    const hit = (await visibleRows(tab)).find(test);
    if (hit) return hit;
    if (!(await scrollMessages(tab, "down"))) return null;
  }
  return null;
}

async function selectRow(tab, seq) {
  await tab.click(`#messages .row[data-seq="${seq}"]`);
  await tab.waitForFunction((seq) => document.getElementById("detail").dataset.seq === String(seq), seq, { timeout });
  await frames(tab);
}

/** Types a filter and presses Enter; waits for the answer (rows or error). */
async function applyFilter(tab, expr) {
  await tab.fill("#filter", expr);
  await tab.press("#filter", "Enter");
  await tab.waitForFunction(
    (expr) => {
      const error = document.getElementById("filter-error");
      return document.getElementById("messages").dataset.filter === expr || (!error.hidden && error.querySelector(".expr")?.textContent === expr);
    },
    expr,
    { timeout },
  );
  await frames(tab);
  const error = await tab.evaluate(() => {
    const box = document.getElementById("filter-error");
    if (box.hidden) return null;
    return {
      message: box.querySelector(".message")?.textContent ?? box.textContent,
      column: box.dataset.column ? Number(box.dataset.column) : null,
      caret: box.querySelector(".mark")?.textContent ?? null,
      shown: box.innerText,
    };
  });
  return error;
}

/** A new tab; its page errors and console errors and warnings go to
 * `errors` (the report's, unless told otherwise). */
async function openUi(browser, errors = report.errors) {
  const tab = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  tab.on("pageerror", (err) => errors.push(`page error: ${err.message}`));
  tab.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") errors.push(`console ${msg.type()}: ${msg.text()}`);
  });
  tab.on("dialog", async (dialog) => {
    report.dialogs = (report.dialogs || 0) + 1;
    await dialog.dismiss();
  });
  return tab;
}

async function status(tab) {
  return (await tab.textContent("#status")).trim();
}

// ---------------------------------------------------------------------
// Scenarios

async function offline(browser) {
  const tab = await openUi(browser);
  await tab.goto(url, { timeout });
  await waitHistory(tab);
  report.status = await status(tab);
  report.history_count = Number(await tab.getAttribute("body", "data-history-count"));
  report.rows = await rowCount(tab);
  report.connections = await tab.$$eval("#connections .conn:not(.all)", (items) =>
    items.map((item) => ({ id: item.dataset.conn, text: item.innerText.replace(/\s+/g, " ").trim() })),
  );
  await scrollMessages(tab, "top");
  await frames(tab);
  report.row_texts = (await visibleRows(tab)).map((row) => row.text);

  const json = await findRow(tab, (row) => /^(text|frame text)/.test(row.type) && /^\s*[[{]/.test(row.preview));
  report.json_row = json ? json.text : null;
  if (json) {
    await selectRow(tab, json.seq);
    report.json_tree = (await tab.$("#detail #json-tree")) !== null;
    report.json_tree_text = report.json_tree ? (await tab.innerText("#json-tree")).slice(0, 2000) : null;
    report.json_keys = await tab.$$eval("#json-tree .j-key", (keys) => keys.map((k) => JSON.parse(k.textContent)));
    await shoot(tab, "ui-main.png");
  }

  const binary = await findRow(tab, (row) => /binary$/.test(row.type));
  report.binary_row = binary ? binary.text : null;
  if (binary) {
    await selectRow(tab, binary.seq);
    report.hexdump = (await tab.$("#detail #hexdump")) !== null;
    report.hexdump_text = report.hexdump ? (await tab.textContent("#hexdump")).split("\n").slice(0, 8).join("\n") : null;
    report.copy_base64_button = (await tab.$("#copy-base64")) !== null;
    await shoot(tab, "ui-detail.png");
  }

  const bad = options["bad-filter"] ?? "opcode == txt";
  report.bad_filter = bad;
  report.filter_error = await applyFilter(tab, bad);
  await shoot(tab, "ui-filter-error.png");

  const good = options["good-filter"] ?? "opcode == binary";
  report.good_filter = good;
  const goodError = await applyFilter(tab, good);
  report.good_filter_error = goodError;
  report.filtered_rows = await rowCount(tab);
  await scrollMessages(tab, "top");
  await frames(tab);
  report.filtered_row_texts = (await visibleRows(tab)).map((row) => row.text);
  report.export_jsonl = await tab.getAttribute("#export-jsonl", "href");
  report.export_har = await tab.getAttribute("#export-har", "href");
}

async function live(browser) {
  const tab = await openUi(browser);
  await tab.goto(url, { timeout });
  await waitHistory(tab);
  report.status = await status(tab);
  const wanted = options.conn;
  const selector = wanted ? `#connections .conn[data-conn="${wanted}"]:not(.closed)` : "#connections .conn:not(.all):not(.closed) .state-open";
  await tab.waitForSelector(selector, { timeout });
  const conn = wanted || (await tab.$eval(selector, (span) => span.closest(".conn").dataset.conn));
  report.conn = conn;
  await tab.click(`#connections .conn[data-conn="${conn}"]`);
  // Offline views never enable actions: a timeout here is a finding the
  // report carries (actions_enabled, timed_out), not an error.
  await tab
    .waitForFunction(() => !document.getElementById("send").disabled, null, { timeout: 5000 })
    .catch(() => timedOut(report, "send enabled"));
  report.actions_enabled = !(await tab.$eval("#send", (b) => b.disabled));
  report.action_why = await tab.textContent("#action-why");
  if (!report.actions_enabled) return;

  const text = options.text ?? "hello from the ui";
  await tab.selectOption("#send-to", options.to ?? "server");
  await tab.selectOption("#send-kind", "text");
  await tab.fill("#send-text", text);
  await tab.click("#send");
  await tab.waitForSelector("#action-result[data-ok='true'], #action-result[data-ok='false']", { timeout });
  report.send_result = await tab.textContent("#action-result");
  report.send_ok = (await tab.getAttribute("#action-result", "data-ok")) === "true";
  // The message (as the proxy relays it) and the action's note appear live.
  await tab
    .waitForFunction(
      (text) => Array.from(document.querySelectorAll("#messages .row[data-seq]")).some((r) => !r.hidden && r.textContent.includes(text)),
      text,
      { timeout: 10000 },
    )
    .catch(() => timedOut(report, "sent message shown"));
  report.rows_with_text = (await visibleRows(tab)).filter((row) => row.preview.includes(text)).map((row) => row.text);
  await shoot(tab, "ui-live.png");

  const code = options.code ?? "4001";
  const reason = options.reason ?? "from ui";
  await tab.evaluate(() => {
    const out = document.getElementById("action-result");
    out.textContent = "";
    out.removeAttribute("data-ok");
  });
  await tab.fill("#close-code", String(code));
  await tab.fill("#close-reason", reason);
  await tab.selectOption("#close-to", options["close-to"] ?? "both");
  await tab.click("#close");
  await tab.waitForSelector("#action-result[data-ok='true'], #action-result[data-ok='false']", { timeout });
  report.close_result = await tab.textContent("#action-result");
  report.close_ok = (await tab.getAttribute("#action-result", "data-ok")) === "true";
  await tab
    .waitForSelector(`#connections .conn.closed[data-conn="${conn}"]`, { timeout: 10000 })
    .catch(() => timedOut(report, "connection closed"));
  report.conn_state = await tab.textContent(`#connections .conn[data-conn="${conn}"] .conn-state`);
  report.conn_closed = (await tab.$(`#connections .conn.closed[data-conn="${conn}"]`)) !== null;
  report.notes = (await visibleRows(tab)).filter((row) => row.type === "note").map((row) => row.preview);
  report.actions_enabled_after = !(await tab.$eval("#send", (b) => b.disabled));
  await shoot(tab, "ui-live-closed.png");
}

async function xss(browser) {
  const tab = await openUi(browser);
  // Counts every img element ever added to the page, even briefly, and
  // how many of them have not finished loading yet: the recorded payload
  // is `<img src=x onerror=alert(1)>`, so markup that got rendered runs
  // its handler (a dialog, counted by openUi) before its error listeners
  // added here, and once no image is pending the handler has had its turn.
  // A blocked inline handler is a script that tried to run: CSP reports it.
  await tab.addInitScript(() => {
    window.__imgsAdded = 0;
    window.__imgsPending = 0;
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__cspViolations.push(`${e.violatedDirective}: ${e.sample || e.blockedURI}`);
    });
    const watch = (img) => {
      window.__imgsAdded++;
      if (img.complete) return;
      window.__imgsPending++;
      const settled = () => window.__imgsPending--;
      img.addEventListener("load", settled, { once: true });
      img.addEventListener("error", settled, { once: true });
    };
    new MutationObserver((records) => {
      for (const r of records) {
        for (const node of r.addedNodes) {
          if (node.nodeType !== 1) continue;
          if (node.tagName === "IMG") watch(node);
          if (node.querySelectorAll) node.querySelectorAll("img").forEach(watch);
        }
      }
    }).observe(document, { childList: true, subtree: true });
  });
  await tab.goto(url, { timeout });
  await waitHistory(tab);
  report.status = await status(tab);
  const needle = options.needle ?? "<img src=x onerror=";
  report.needle = needle;
  const row = await findRow(tab, (r) => r.preview.includes(needle));
  report.found = row !== null;
  if (row) {
    report.row_preview = row.preview;
    await selectRow(tab, row.seq);
    const detail = await tab.textContent("#detail");
    report.detail_shows_literal = detail.includes(needle);
    report.detail_payload = await tab.evaluate(() => document.querySelector("#detail .payload-text, #detail #json-tree")?.textContent ?? null);
    // The connection's handshake (URL, headers) is in the pane too, as text.
    report.handshake_text = await tab.evaluate(() => document.querySelector("#detail .handshake")?.textContent ?? null);
  }
  await tab
    .waitForFunction(() => window.__imgsPending === 0, null, { timeout })
    .catch(() => timedOut(report, "injected images settled"));
  report.img_in_messages = await tab.$$eval("#messages img", (x) => x.length);
  report.img_in_detail = await tab.$$eval("#detail img", (x) => x.length);
  report.img_in_connections = await tab.$$eval("#connections img", (x) => x.length);
  report.img_in_page = await tab.$$eval("img", (x) => x.length);
  report.img_ever_added = await tab.evaluate(() => window.__imgsAdded);
  report.csp_violations = await tab.evaluate(() => window.__cspViolations);
  report.dialogs = report.dialogs || 0;
  // The payload's alert(1) opened a dialog: the page ran the markup.
  report.script_ran = report.dialogs > 0;
  await shoot(tab, "ui-xss.png");
}

async function hijack(browser) {
  const ui = new URL(url);
  const token = ui.searchParams.get("token");
  const target = `ws://${ui.host}/ws?token=${encodeURIComponent(token)}`;
  const exportUrl = `${ui.origin}/export.jsonl?token=${encodeURIComponent(token)}`;
  const evil = `<!doctype html>
<meta charset="utf-8">
<title>another origin</title>
<pre id="out">trying</pre>
<script>
  const result = { opened: false, messages: [], error: false, close_code: null, fetch_readable: false, fetch_error: null };
  const done = () => { document.getElementById("out").textContent = JSON.stringify(result); document.body.dataset.done = "1"; };
  const ws = new WebSocket(${JSON.stringify(target)});
  ws.onopen = () => { result.opened = true; };
  ws.onmessage = (e) => { result.messages.push(String(e.data).slice(0, 200)); };
  ws.onerror = () => { result.error = true; };
  ws.onclose = (e) => {
    result.close_code = e.code;
    fetch(${JSON.stringify(exportUrl)})
      .then((r) => r.text())
      .then((t) => { result.fetch_readable = true; result.fetch_sample = t.slice(0, 200); })
      .catch((err) => { result.fetch_error = String(err); })
      .finally(done);
  };
  setTimeout(() => { if (ws.readyState === WebSocket.OPEN) ws.close(); }, 2000);
</script>`;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(evil);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const other = `http://127.0.0.1:${server.address().port}/`;
    report.other_origin = other;
    report.ui_origin = ui.origin;
    // The other origin's failed WebSocket and fetch are expected errors.
    report.other_origin_errors = [];
    const tab = await openUi(browser, report.other_origin_errors);
    await tab.goto(other, { timeout });
    await tab.waitForSelector("body[data-done]", { timeout });
    Object.assign(report, JSON.parse(await tab.textContent("#out")));

    // Control: the UI's own page may open the same URL.
    const own = await openUi(browser);
    await own.goto(url, { timeout });
    await waitHistory(own);
    report.status = await status(own);
    report.control_opened = await own.evaluate(
      (target) =>
        new Promise((resolve) => {
          const ws = new WebSocket(target);
          ws.onopen = () => {
            ws.close();
            resolve(true);
          };
          ws.onerror = () => resolve(false);
        }),
      target,
    );
  } finally {
    server.close();
  }
}

async function perf(browser) {
  const tab = await openUi(browser);
  const started = Date.now();
  await tab.goto(url, { timeout });
  await waitHistory(tab, Number(options.timeout || 300000));
  report.load_ms = Date.now() - started;
  report.status = await status(tab);
  report.events = Number(await tab.getAttribute("body", "data-history-count"));
  report.rows = await rowCount(tab);
  report.dom_rows = await tab.$$eval("#messages .row", (rows) => rows.length);

  // Jump to the top, then measure jumping to the bottom until the last
  // row is drawn.
  await scrollMessages(tab, "top");
  await frames(tab);
  report.scroll_bottom_ms = await tab.evaluate(async (limit) => {
    const m = document.getElementById("messages");
    const t0 = performance.now();
    m.scrollTop = m.scrollHeight;
    await new Promise((resolve, reject) => {
      const check = () => {
        const rows = Array.from(m.querySelectorAll(".row[data-seq]")).filter((r) => !r.hidden);
        const bottom = rows.some((r) => r.getBoundingClientRect().bottom >= m.getBoundingClientRect().bottom - 30);
        if (bottom) requestAnimationFrame(() => resolve());
        else if (performance.now() - t0 > limit) reject(new Error("the last rows were never drawn"));
        else requestAnimationFrame(check);
      };
      check();
    });
    return performance.now() - t0;
  }, timeout);
  // 50 jumps to random places: the slowest frame after one.
  report.random_jumps_max_ms = await tab.evaluate(async () => {
    const m = document.getElementById("messages");
    let worst = 0;
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      m.scrollTop = Math.random() * m.scrollHeight;
      await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
      worst = Math.max(worst, performance.now() - t0);
    }
    return worst;
  });
  const timeFilter = (expr) =>
    tab.evaluate(
      async ([expr, limit]) => {
        const input = document.getElementById("filter");
        const m = document.getElementById("messages");
        input.value = expr;
        const t0 = performance.now();
        input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
        await new Promise((resolve, reject) => {
          const check = () => {
            if (m.dataset.filter === expr) requestAnimationFrame(() => resolve());
            else if (performance.now() - t0 > limit) reject(new Error(`the filter ${expr} was never applied`));
            else requestAnimationFrame(check);
          };
          check();
        });
        return performance.now() - t0;
      },
      [expr, timeout],
    );
  const expr = options["perf-filter"] ?? "dir == c2s";
  report.filter = expr;
  report.filter_ms = await timeFilter(expr);
  report.filtered_rows = await rowCount(tab);
  report.clear_filter_ms = await timeFilter("");
  report.rows_after_clear = await rowCount(tab);
  report.js_heap_mb = await tab.evaluate(() => (performance.memory ? Math.round(performance.memory.usedJSHeapSize / 1048576) : null));
  await shoot(tab, "ui-perf.png");
}

const scenarios = { offline, live, xss, hijack, perf };
if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  await scenarios[scenario](browser);
} catch (err) {
  failed = true;
  report.error = String(err && err.stack ? err.stack : err);
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages.length) await shoot(pages[pages.length - 1], `ui-failure-${scenario}.png`);
  } catch {
    // the failure is reported already
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(failed ? 1 : 0);
