"""Drives `wscope connect` through a pseudo-terminal, as a person would.

Usage: interactive.py WSCOPE_BINARY ECHO_URL HOME_DIR
Types messages and slash commands, checks what appears on the screen and
that the session lands in the history file. Exits 0 and prints "ok" when
every check passed; a failed expectation exits non-zero, naming it.
"""

import os
import re
import sys

import pexpect

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def check(ok: bool, what: str) -> None:
    """Fails the run with `what` on stderr; unlike `assert`, not skipped under -O."""
    if not ok:
        sys.exit(f"check failed: {what}")


def main() -> None:
    binary, url, home = sys.argv[1:4]
    env = dict(os.environ, HOME=home, TERM="xterm", XDG_DATA_HOME=os.path.join(home, "data"))
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(binary, ["connect", url], env=env, encoding="utf-8", timeout=10, dimensions=(40, 200))
    log = open(os.path.join(home, "screen.log"), "w")
    child.logfile_read = log

    def expect(pattern: str) -> None:
        child.expect(pattern)

    expect("> ")
    child.sendline("hello from a terminal")
    expect(r"<\S* hello from a terminal")
    # Colors are on in a terminal: the received marker is green.
    check("\x1b[32m<" in child.before + child.after, f"a green received marker in {child.before + child.after!r}")

    child.sendline("/ping abc")
    expect("pong: round trip")

    child.sendline("/binary 41 42 43")
    # One line per message on a terminal: binary is its size and bytes.
    expect(r"<\S* binary 3 B 41 42 43")

    child.sendline("/stats")
    expect(r"2 messages / \d+ bytes sent")

    child.sendline("/bogus")
    expect("unknown command /bogus")

    child.sendline("/help")
    expect("/close \\[code")

    child.sendline("/close 4000 all done")
    expect("closed by client: 4000")
    child.expect(pexpect.EOF)
    child.close()
    check(child.exitstatus == 5, f"exit status {child.exitstatus}, not 5 (closed with another code)")

    history = open(os.path.join(home, "data", "wscope", "history")).read()
    check("hello from a terminal" in history, f"the message in the history file: {history!r}")
    print("ok")


if __name__ == "__main__":
    main()
