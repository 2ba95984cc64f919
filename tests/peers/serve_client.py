"""A Python `websockets` client that reports what the library itself saw.

Used by crates/wscope/tests/serve.rs to test each `wscope serve` behaviour:
the test asserts on what this prints, which is only what `websockets`
reported (close codes, statuses, exceptions, frames from its debug log).

Usage:
  serve_client.py session URL [--send TEXT]... [--send-size N] [--expect N]
                  [--origin O] [--subprotocol S]... [--header K:V]...
                  [--ping-interval S --ping-timeout S] [--open-timeout S]
                  [--wait S] [--cafile F] [--no-compress] [--full]
  serve_client.py broadcast URL --clients N
  serve_client.py many URL --count N

Prints one JSON object on stdout.
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
)


class FrameLog(logging.Handler):
    """Collects the frames websockets logs at debug level ('< TEXT ...')."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.received = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("< ") and message[2:6] in (
            "TEXT", "BINA", "CONT", "PING", "PONG", "CLOS",
        ):
            self.received.append(message[2:].split(" ", 1)[0])


def close_info(close):
    if close is None:
        return None
    return {"code": close.code, "reason": close.reason}


def ssl_context(cafile):
    if not cafile:
        return None
    context = ssl.create_default_context(cafile=cafile)
    return context


async def session(args):
    frames = FrameLog()
    logger = logging.getLogger("websockets.client")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(frames)
    result = {"opened": False, "received": []}
    headers = []
    for header in args.header:
        name, _, value = header.partition(":")
        headers.append((name.strip(), value.strip()))
    started = time.monotonic()
    try:
        async with connect(
            args.url,
            origin=args.origin,
            subprotocols=args.subprotocol or None,
            additional_headers=headers or None,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            open_timeout=args.open_timeout,
            compression=None if args.no_compress else "deflate",
            max_size=None,
            close_timeout=args.close_timeout,
            proxy=args.proxy,
            ssl=ssl_context(args.cafile),
        ) as ws:
            result["opened"] = True
            result["handshake_s"] = time.monotonic() - started
            result["subprotocol"] = ws.subprotocol
            to_send = list(args.send)
            if args.send_size:
                to_send.append("x" * args.send_size)
            for text in to_send:
                result.setdefault("sent_at", []).append(time.monotonic() - started)
                await ws.send(text)
            deadline = time.monotonic() + args.wait
            while args.expect is None or len(result["received"]) < args.expect:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    result["timed_out"] = True
                    break
                try:
                    message = await asyncio.wait_for(ws.recv(), remaining)
                except asyncio.TimeoutError:
                    result["timed_out"] = True
                    break
                kind = "text" if isinstance(message, str) else "binary"
                data = message if kind == "text" else message.hex()
                result["received"].append(
                    {"type": kind, "len": len(message), "data": data if args.full else data[:200],
                     "at": time.monotonic() - started}
                )
            if args.close:
                await ws.close(code=1000, reason="client done")
        result["closed"] = {
            "rcvd": close_info(ws.protocol.close_rcvd),
            "sent": close_info(ws.protocol.close_sent),
            "code": ws.protocol.close_code,
        }
    except InvalidStatus as exc:
        result["error"] = "InvalidStatus"
        result["status"] = exc.response.status_code
        result["body"] = (exc.response.body or b"").decode("utf-8", "replace")
        result["headers"] = {k.lower(): v for k, v in exc.response.headers.raw_items()}
    except ConnectionClosed as exc:
        result["error"] = type(exc).__name__
        result["closed"] = {
            "rcvd": close_info(exc.rcvd),
            "sent": close_info(exc.sent),
            "code": exc.rcvd.code if exc.rcvd else (exc.sent.code if exc.sent else 1006),
        }
    except InvalidHandshake as exc:
        result["error"] = type(exc).__name__
        result["message"] = str(exc)
    except ssl.SSLError as exc:
        result["error"] = type(exc).__name__
        result["message"] = str(exc)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        result["error"] = "TimeoutError"
        result["message"] = str(exc)
    result["elapsed_s"] = time.monotonic() - started
    result["frames"] = frames.received
    return result


async def broadcast(args):
    clients = [await connect(args.url, compression=None) for _ in range(args.clients)]
    await clients[0].send("to everyone")
    got = []
    for ws in clients:
        got.append(await asyncio.wait_for(ws.recv(), 5))
    for ws in clients:
        await ws.close()
    return {"received": got}


async def many(args):
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass

    async def one(i, ws):
        text = f"hello from {i}"
        await ws.send(text)
        return await asyncio.wait_for(ws.recv(), 30) == text

    # Open them all first: they are all held open at once.
    connections = []
    for start in range(0, args.count, 100):
        batch = [
            connect(args.url, compression=None, open_timeout=30, ping_interval=None)
            for _ in range(start, min(start + 100, args.count))
        ]
        connections += await asyncio.gather(*batch)
    open_count = len(connections)
    if args.hold_file:
        with open(args.hold_file, "w") as f:
            f.write(str(open_count))
        # Hold them open until the test has looked at the metrics.
        while os.path.exists(args.hold_file):
            await asyncio.sleep(0.05)
    echoed = await asyncio.gather(*(one(i, ws) for i, ws in enumerate(connections)))
    await asyncio.gather(*(ws.close() for ws in connections))
    codes = [ws.protocol.close_code for ws in connections]
    return {
        "opened": open_count,
        "echoed": sum(1 for ok in echoed if ok),
        "closed_1000": sum(1 for code in codes if code == 1000),
    }


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("session")
    s.add_argument("url")
    s.add_argument("--send", action="append", default=[])
    s.add_argument("--send-size", type=int, default=0)
    s.add_argument("--expect", type=int)
    s.add_argument("--origin")
    s.add_argument("--subprotocol", action="append", default=[])
    s.add_argument("--header", action="append", default=[])
    s.add_argument("--ping-interval", type=float, default=None)
    s.add_argument("--ping-timeout", type=float, default=None)
    s.add_argument("--open-timeout", type=float, default=10)
    s.add_argument("--wait", type=float, default=5)
    s.add_argument("--cafile")
    s.add_argument("--no-compress", action="store_true")
    s.add_argument("--close", action="store_true")
    s.add_argument("--full", action="store_true", help="report whole messages (default: the first 200 characters)")
    s.add_argument("--close-timeout", type=float, default=10)
    s.add_argument("--proxy", default=None, help="an HTTP proxy URL (default: none, whatever the environment says)")
    b = sub.add_parser("broadcast")
    b.add_argument("url")
    b.add_argument("--clients", type=int, default=3)
    m = sub.add_parser("many")
    m.add_argument("url")
    m.add_argument("--count", type=int, default=1000)
    m.add_argument("--hold-file")
    args = parser.parse_args()
    runner = {"session": session, "broadcast": broadcast, "many": many}[args.mode]
    print(json.dumps(asyncio.run(runner(args))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
