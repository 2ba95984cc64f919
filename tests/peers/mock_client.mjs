// A Node.js `ws` client that talks in steps and prints what the library
// saw, one JSON line per event, for `serve --replay` tests
// (crates/wscope/tests/serve_replay.rs).
//
// Usage: node mock_client.mjs URL [--first N] [--step TEXT N]... [--close]
//                                   [--timeout MS]
//
// It waits for the first N messages (sent unprompted), then for each step
// sends TEXT and waits for N messages. Then it closes (--close) or waits
// for the server to close. Lines printed, as mock_client.py prints them:
//   {"event":"open","extensions":...}
//   {"event":"message","type":"text"|"binary","data":...}
//   {"event":"sent","data":TEXT}
//   {"event":"timeout","waiting":"first"|"step N"|"close"}
//   {"event":"close","code":...,"reason":...}  (from the 'close' event)
// A message is printed when it arrives, whatever the client is waiting for.

import WebSocket from "ws";

const args = process.argv.slice(2);
const url = args[0];
let first = 0;
const steps = [];
let closeFirst = false;
let timeoutMs = 5000;
for (let i = 1; i < args.length; i++) {
  if (args[i] === "--first") first = Number(args[++i]);
  else if (args[i] === "--step") {
    steps.push({ text: args[i + 1], count: Number(args[i + 2]) });
    i += 2;
  } else if (args[i] === "--close") closeFirst = true;
  else if (args[i] === "--timeout") timeoutMs = Number(args[++i]);
}

const emit = (fields) => console.log(JSON.stringify(fields));

let received = 0;
let closed = false;
let wake = () => {};
// Resolves once `count` messages in all have arrived (true), or the
// connection closed or the time ran out (false).
const until = (count, waiting) =>
  new Promise((resolve) => {
    const timer = setTimeout(() => {
      emit({ event: "timeout", waiting });
      resolve(false);
    }, timeoutMs);
    const check = () => {
      if (received >= count || closed) {
        clearTimeout(timer);
        resolve(received >= count && !closed);
      }
    };
    wake = check;
    check();
  });

const ws = new WebSocket(url);
ws.on("message", (data, isBinary) => {
  received += 1;
  emit({ event: "message", type: isBinary ? "binary" : "text", data: isBinary ? data.toString("hex") : data.toString() });
  wake();
});
ws.on("error", (err) => emit({ event: "error", message: err.message }));
ws.on("close", (code, reason) => {
  closed = true;
  emit({ event: "close", code, reason: reason.toString() });
  wake();
  process.exit(0);
});
ws.on("open", async () => {
  emit({ event: "open", extensions: ws.extensions });
  let expected = first;
  let going = await until(expected, "first");
  for (const [index, step] of steps.entries()) {
    if (!going) break;
    ws.send(step.text);
    emit({ event: "sent", data: step.text });
    expected += step.count;
    going = await until(expected, `step ${index + 1}`);
  }
  if (going && closeFirst) {
    ws.close(1000, "client done");
  } else if (going) {
    // Wait for the server's close; anything else arriving is printed.
    await until(Infinity, "close");
    ws.close(1000, "client done");
  } else if (!closed) {
    ws.close(1000, "client done");
  }
});
