"""The soak run behind scripts/soak (read that file's header first).

Two parts, each against real processes on 127.0.0.1:

  slowloris  N clients open TCP and send a WebSocket upgrade one byte per
             second, against `wscope proxy` (in front of `wscope serve`)
             and against `wscope serve` directly. Every one of them must be
             dropped by the server at its handshake timeout, while normal
             clients (Python `websockets`, a connect, one echo, a close)
             keep being served: their round trips are measured before and
             during the attack. The server's open descriptors
             (/proc/PID/fd) are counted before, at the peak and after.

  transfer   BYTES of JSON text messages sent through `wscope proxy`
             (recording to a file) to `wscope serve`'s echo and back, once
             through the byte relay and once with a --rules file whose
             filter reads every message's JSON (the shaping relay). The
             proxy's RSS is sampled before, during and after.

Prints one JSON object per measurement and a summary table; exits 1 when a
check fails (a slowloris client not dropped, or dropped far from the
timeout, a normal client not served, descriptors left behind, RSS growing
with the bytes).
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)
        print(f"FAIL: {what}", file=sys.stderr, flush=True)


# --- processes ---------------------------------------------------------------


class Process:
    """A wscope process that names its address on its first stdout line."""

    def __init__(self, args, name):
        self.name = name
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"ws://[^\s/)]+", line)
        if not match:
            self.stop()
            sys.exit(f"{name} named no address: {line!r}")
        self.url = match.group(0)
        self.port = int(self.url.rsplit(":", 1)[1])

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


# --- slowloris -----------------------------------------------------------------

REQUEST = (
    "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


async def slow_client(port, results, opened):
    """Sends the upgrade a byte a second until the server drops it; records
    when (seconds after connecting), or None if it never did."""
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        results.append(("refused", str(e)))
        return
    opened.append(1)
    try:
        for byte in REQUEST:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                # A second's wait is the pace: whatever comes back (an EOF,
                # or an answer such as 408 before the close) ends it.
                data = await asyncio.wait_for(reader.read(4096), timeout=1.0)
            except asyncio.TimeoutError:
                continue
            except OSError:
                data = b""
            dropped_at = time.monotonic() - start
            if data:
                try:
                    await asyncio.wait_for(reader.read(), timeout=5.0)
                except (asyncio.TimeoutError, OSError):
                    pass
            results.append(("dropped", dropped_at))
            return
        results.append(("sent the whole request", time.monotonic() - start))
    finally:
        writer.close()


async def normal_round_trip(url):
    start = time.monotonic()
    async with websockets.connect(url + "/echo", open_timeout=30, close_timeout=5) as ws:
        await ws.send("ping")
        reply = await asyncio.wait_for(ws.recv(), timeout=30)
        assert_reply = reply == "ping"
    return time.monotonic() - start if assert_reply else None


async def round_trips(url, count, interval):
    times, failed = [], 0
    for _ in range(count):
        try:
            rtt = await normal_round_trip(url)
            if rtt is None:
                failed += 1
            else:
                times.append(rtt)
        except Exception:
            failed += 1
        await asyncio.sleep(interval)
    return times, failed


def ms(values, q):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)


async def slowloris(target, url, clients, timeout_s, label):
    fds_before = target.fds()
    base, base_failed = await round_trips(url, 20, 0.05)
    results, opened = [], []
    tasks = []
    # Open them over about two seconds (a burst of SYNs would only test
    # the listen backlog).
    for i in range(clients):
        tasks.append(asyncio.create_task(slow_client(target.port, results, opened)))
        if i % 100 == 99:
            await asyncio.sleep(0.1)
    await asyncio.sleep(max(1.0, timeout_s / 2))
    fds_peak = target.fds()
    during, during_failed = await round_trips(url, 40, 0.1)
    await asyncio.gather(*tasks)
    await asyncio.sleep(1.0)
    fds_after = target.fds()
    dropped = [t for kind, t in results if kind == "dropped"]
    other = [r for r in results if r[0] != "dropped"]
    report = {
        "part": "slowloris",
        "target": label,
        "clients": clients,
        "connected": len(opened),
        "dropped": len(dropped),
        "not_dropped": other[:5],
        "dropped_after_s": {
            "min": round(min(dropped), 2) if dropped else None,
            "median": round(statistics.median(dropped), 2) if dropped else None,
            "max": round(max(dropped), 2) if dropped else None,
        },
        "handshake_timeout_s": timeout_s,
        "normal_rtt_ms_before": {"p50": ms(base, 0.5), "p99": ms(base, 0.99), "failed": base_failed},
        "normal_rtt_ms_during": {
            "p50": ms(during, 0.5),
            "p99": ms(during, 0.99),
            "max": ms(during, 1.0),
            "failed": during_failed,
        },
        "fds": {"before": fds_before, "peak": fds_peak, "after": fds_after},
    }
    print(json.dumps(report), flush=True)
    check(len(opened) == clients, f"{label}: {len(opened)} of {clients} slow clients connected")
    check(len(dropped) == len(opened), f"{label}: {len(dropped)} of {len(opened)} slow clients dropped")
    if dropped:
        # Dropped at the timeout: not before it, and not long after (the
        # clients poll once a second).
        check(min(dropped) >= timeout_s - 0.5, f"{label}: a slow client dropped after {min(dropped):.2f}s")
        check(max(dropped) <= timeout_s + 5, f"{label}: a slow client dropped only after {max(dropped):.2f}s")
    check(during_failed == 0 and base_failed == 0, f"{label}: normal clients failed ({base_failed}, {during_failed})")
    check(fds_peak >= fds_before + clients // 2, f"{label}: the attack was not holding descriptors ({fds_peak})")
    check(fds_after <= fds_before + 2, f"{label}: {fds_after} descriptors after, {fds_before} before")
    return report


# --- transfer ------------------------------------------------------------------


async def transfer(proxy, total, size, label):
    rss = {"before_kib": proxy.rss_kib(), "samples_kib": []}
    pad = "x" * (size - 40)
    sent = received = 0
    stop = asyncio.Event()

    async def sample():
        while not stop.is_set():
            rss["samples_kib"].append(proxy.rss_kib())
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    start = time.monotonic()
    async with websockets.connect(proxy.url + "/echo", max_size=None, compression=None, close_timeout=10) as ws:
        in_flight = 8

        async def reader():
            nonlocal received
            while received < sent_target:
                message = await ws.recv()
                received += len(message)

        sent_target = (total // size) * size
        task = asyncio.create_task(reader())
        n = 0
        while sent < sent_target:
            # Keep at most `in_flight` messages outstanding.
            while sent - received >= in_flight * size:
                await asyncio.sleep(0.001)
            message = '{"type":"data","n":%d,"pad":"%s"}' % (n, pad)
            message = message[:size]
            if len(message) < size:
                message = message[:-2] + "x" * (size - len(message)) + '"}'
            await ws.send(message)
            sent += size
            n += 1
        await task
    elapsed = time.monotonic() - start
    stop.set()
    await sampler
    await asyncio.sleep(2.0)
    rss["after_kib"] = proxy.rss_kib()
    samples = rss.pop("samples_kib")
    quarter = max(1, len(samples) // 4)
    report = {
        "part": "transfer",
        "relay": label,
        "bytes_each_way": sent,
        "message_bytes": size,
        "seconds": round(elapsed, 1),
        "mb_per_s_each_way": round(sent / elapsed / 1e6, 1),
        "rss_kib": {
            "before": rss["before_kib"],
            "first_quarter_max": max(samples[:quarter]),
            "last_quarter_max": max(samples[-quarter:]),
            "max": max(samples),
            "after": rss["after_kib"],
            "samples": len(samples),
        },
    }
    print(json.dumps(report), flush=True)
    first, last = report["rss_kib"]["first_quarter_max"], report["rss_kib"]["last_quarter_max"]
    # Flat: the last quarter of the run holds no more than the first plus
    # a little (allocator noise), however many bytes went through.
    check(last <= first * 1.25 + 8192, f"{label}: RSS grew from {first} KiB to {last} KiB")
    check(received == sent, f"{label}: {received} of {sent} bytes echoed")
    return report


# --- main ----------------------------------------------------------------------


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMG]?)i?B?", text.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text}")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()]


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wscope", default="target/release/wscope")
    p.add_argument("--part", choices=["slowloris", "transfer", "all"], default="all")
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--proxy-timeout", type=float, default=10.0, help="the proxy's --handshake-timeout, seconds")
    p.add_argument("--bytes", type=parse_size, default=1 << 30)
    p.add_argument("--message-size", type=parse_size, default=64 << 10)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wscope-soak-"))
    serve = Process([args.wscope, "serve", "--listen", "127.0.0.1:0", "--log-format", "off"], "wscope serve")
    try:
        if args.part in ("slowloris", "all"):
            proxy = Process(
                [args.wscope, "proxy", "--listen", "127.0.0.1:0", "--quiet", "--upstream", serve.url,
                 "--handshake-timeout", f"{args.proxy_timeout}s", "--record", str(work / "slow.jsonl")],
                "wscope proxy",
            )
            try:
                await slowloris(proxy, proxy.url, args.clients, args.proxy_timeout, "proxy")
            finally:
                proxy.stop()
            # wscope serve's handshake timeout is fixed at 10 s.
            await slowloris(serve, serve.url, args.clients, 10.0, "serve")
        if args.part in ("transfer", "all"):
            rules = work / "rules.toml"
            rules.write_text("[[rule]]\nmatch = 'json.type == \"never sent\"'\naction = \"drop\"\n")
            for label, extra in (("byte relay", []), ("shaping relay (--rules, JSON filter)", ["--rules", str(rules)])):
                record = work / "transfer.jsonl"
                proxy = Process(
                    [args.wscope, "proxy", "--listen", "127.0.0.1:0", "--quiet", "--upstream", serve.url,
                     "--record", str(record), *extra],
                    "wscope proxy",
                )
                try:
                    await transfer(proxy, args.bytes, args.message_size, label)
                finally:
                    proxy.stop()
                record.unlink(missing_ok=True)
    finally:
        serve.stop()
    if FAILURES:
        print("\n".join(["soak: failed:"] + FAILURES), file=sys.stderr)
        sys.exit(1)
    print("soak: every check held", file=sys.stderr)


asyncio.run(main())
