"""A Python `websockets` client that checks `wscope serve` echoes correctly.

Usage: ws_client.py URL. Exits 0 and prints "ok" when every check passed;
exits non-zero, naming it on stderr, at the first one that did not.
"""

import os
import sys

from websockets.sync.client import connect


def check(ok: bool, what: str) -> None:
    """Fails the run with `what` on stderr; unlike `assert`, not skipped under -O."""
    if not ok:
        sys.exit(f"check failed: {what}")


def main() -> None:
    url = sys.argv[1]
    # websockets offers permessage-deflate by default; check it was agreed.
    with connect(url, max_size=8 * 1024 * 1024) as ws:
        extensions = [type(e).__name__ for e in ws.protocol.extensions]
        check(extensions == ["PerMessageDeflate"], f"extensions agreed: {extensions}")

        ws.send("hello, wscope")
        echo = ws.recv()
        check(echo == "hello, wscope", f"echo of a short text: {echo!r}")

        blob = os.urandom(70_000)
        ws.send(blob)
        echo = ws.recv()
        check(echo == blob, f"echo of {len(blob)} random bytes: {len(echo)} {type(echo).__name__} back, equal: {echo == blob}")

        text = "κόσμε " * 50_000  # ~650 KB of multi-byte UTF-8, compressible
        ws.send(text)
        echo = ws.recv()
        check(echo == text, f"echo of {len(text)} characters: {len(echo)} {type(echo).__name__} back, equal: {echo == text}")

        # A fragmented message: websockets sends an iterable as fragments.
        ws.send(["frag", "ment", "ed ✓"])
        echo = ws.recv()
        check(echo == "fragmented ✓", f"echo of a fragmented message: {echo!r}")

        pong = ws.ping(b"are you there")
        check(pong.wait(5), "no pong within 5 s")

        ws.close(code=1000, reason="done")
        check(ws.protocol.close_code == 1000, f"close code {ws.protocol.close_code}, not 1000")
    print("ok")


if __name__ == "__main__":
    main()
