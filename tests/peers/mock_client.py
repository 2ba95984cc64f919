"""A Python `websockets` client that talks in steps and prints what the
library saw, one JSON line per event, for `serve --replay` tests
(crates/wscope/tests/serve_replay.rs).

Usage: mock_client.py URL [--first N] [--step TEXT N]... [--close]
                            [--timeout S]

It waits for the first N messages (sent unprompted), then for each step
sends TEXT and waits for N messages. Then it closes (--close) or waits for
the server to close. Lines printed:
  {"event": "open", "extensions": ...}
  {"event": "message", "type": "text"|"binary", "data": ...}
  {"event": "sent", "data": TEXT}
  {"event": "timeout", "waiting": "first"|"step N"|"close"}
  {"event": "close", "code": ..., "reason": ..., "rcvd": {"code", "reason"} | null}
A message the server sends at any point is printed when it arrives, so an
extra or a missing one shows in the order of the lines.
"""

import argparse
import asyncio
import json

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def emit(**fields):
    print(json.dumps(fields), flush=True)


async def take(ws, count, timeout, waiting):
    for _ in range(count):
        try:
            message = await asyncio.wait_for(ws.recv(), timeout)
        except TimeoutError:
            emit(event="timeout", waiting=waiting)
            return False
        if isinstance(message, bytes):
            emit(event="message", type="binary", data=message.hex())
        else:
            emit(event="message", type="text", data=message)
    return True


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--step", nargs=2, action="append", default=[], metavar=("TEXT", "N"))
    parser.add_argument("--close", action="store_true")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()

    ws = await connect(args.url, open_timeout=args.timeout, close_timeout=args.timeout)
    emit(event="open", extensions=[str(e.name) for e in ws.protocol.extensions])
    try:
        going = await take(ws, args.first, args.timeout, "first")
        for number, (text, count) in enumerate(args.step, start=1):
            if not going:
                break
            await ws.send(text)
            emit(event="sent", data=text)
            going = await take(ws, int(count), args.timeout, f"step {number}")
        if going and args.close:
            await ws.close(1000, "client done")
        elif going:
            # Anything more before the server's close is printed too.
            while await take(ws, 1, args.timeout, "close"):
                pass
        await ws.close(1000, "client done")
    except ConnectionClosed:
        pass
    rcvd = ws.protocol.close_rcvd
    emit(
        event="close",
        code=ws.close_code,
        reason=ws.close_reason,
        rcvd=None if rcvd is None else {"code": rcvd.code, "reason": rcvd.reason},
    )


if __name__ == "__main__":
    asyncio.run(main())
