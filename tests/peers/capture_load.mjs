// A fast load client for scripts/bench-capture: Node.js `ws` sending COUNT
// messages to an echo endpoint, WINDOW of them in flight, alternating binary
// (1 B to 16 KiB of random bytes) and JSON text (a trade-like object of
// about 100-300 bytes), without compression, then closing with 1000.
//
// Usage: node capture_load.mjs URL --count N [--window 64]
//
// Prints one JSON object when the connection has closed: messages and
// payload bytes each way, and the frames on the wire as the client knows
// them: it sent every message as one frame plus its close frame, and
// counts what it received (ws hands out whole messages, so a server that
// fragmented its echoes would make received_frames too low: the bench
// prints tshark's and wscope's counts beside it for that reason).

import WebSocket from "ws";

const args = process.argv.slice(2);
const url = args[0];
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const count = option("--count", 1000);
const window = option("--window", 64);
if (!url || !Number.isInteger(count) || count < 1) {
  console.error("usage: node capture_load.mjs URL --count N [--window 64]");
  process.exit(2);
}

// Random bytes once; each binary message is a slice at a varying offset.
const pool = Buffer.alloc(1 << 17);
for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);

const symbols = ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-EUR"];
function message(i) {
  if (i % 2 === 0) {
    const len = 1 + ((i * 7919) % 16384);
    const at = (i * 104729) % (pool.length - len);
    return { data: pool.subarray(at, at + len), binary: true, len };
  }
  const trade = {
    type: i % 10 === 1 ? "book" : "trade",
    seq: i,
    symbol: symbols[i % symbols.length],
    price: 90000 + (i % 1000) / 100,
    size: (i % 97) / 10,
    side: i % 3 ? "buy" : "sell",
    note: "x".repeat(i % 200),
  };
  const text = JSON.stringify(trade);
  return { data: text, binary: false, len: Buffer.byteLength(text) };
}

const stats = {
  sent_messages: 0,
  received_messages: 0,
  sent_bytes: 0,
  received_bytes: 0,
  sent_frames: 0,
  received_frames: 0,
  close_code: null,
};

const ws = new WebSocket(url, { perMessageDeflate: false });
function pump() {
  while (stats.sent_messages < count && stats.sent_messages - stats.received_messages < window) {
    const m = message(stats.sent_messages);
    ws.send(m.data, { binary: m.binary });
    stats.sent_messages += 1;
    stats.sent_bytes += m.len;
  }
}
ws.on("open", pump);
ws.on("message", (data) => {
  stats.received_messages += 1;
  stats.received_bytes += data.length;
  if (stats.received_messages === count) ws.close(1000, "done");
  else pump();
});
ws.on("close", (code) => {
  stats.close_code = code;
  // One frame per message each way, and a close frame each way.
  stats.sent_frames = stats.sent_messages + 1;
  stats.received_frames = stats.received_messages + 1;
  console.log(JSON.stringify(stats));
  process.exit(code === 1000 ? 0 : 1);
});
ws.on("error", (err) => {
  console.error(`capture_load: ${err.message}`);
  process.exit(1);
});
