"""A Python `websockets` client that checks `wscope serve` echoes correctly.

Usage: ws_client.py URL. Exits 0 and prints "ok" when every check passed;
raises (non-zero exit, traceback on stderr) at the first one that did not.
"""

import os
import sys

from websockets.sync.client import connect


def main() -> None:
    url = sys.argv[1]
    # websockets offers permessage-deflate by default; check it was agreed.
    with connect(url, max_size=8 * 1024 * 1024) as ws:
        extensions = [type(e).__name__ for e in ws.protocol.extensions]
        assert extensions == ["PerMessageDeflate"], extensions

        ws.send("hello, wscope")
        assert ws.recv() == "hello, wscope"

        blob = os.urandom(70_000)
        ws.send(blob)
        assert ws.recv() == blob

        text = "κόσμε " * 50_000  # ~650 KB of multi-byte UTF-8, compressible
        ws.send(text)
        assert ws.recv() == text

        # A fragmented message: websockets sends an iterable as fragments.
        ws.send(["frag", "ment", "ed ✓"])
        assert ws.recv() == "fragmented ✓"

        pong = ws.ping(b"are you there")
        assert pong.wait(5), "no pong within 5 s"

        ws.close(code=1000, reason="done")
        assert ws.protocol.close_code == 1000, ws.protocol.close_code
    print("ok")


if __name__ == "__main__":
    main()
