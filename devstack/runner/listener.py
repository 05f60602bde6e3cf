"""supervisord's event listener for `make run`: each process state change, one JSON line.

    python -m devstack.runner.listener EVENTS_FILE SUPERVISORD_LOG

supervisord runs this as `[eventlistener:events]` and speaks to it over its stdin and stdout in
its event-listener protocol (http://supervisord.org/events.html): the listener writes `READY`,
supervisord sends a header line of `key:value` tokens, then `len` bytes of payload, and the
listener answers `RESULT 2` and `OK`, then is ready again. The run command (`make run`'s terminal)
and `make ps` read the events file. Written by hand because the protocol is the whole of it:
`supervisor.childutils` has the same three steps, untyped.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import BinaryIO

from devstack.runner.supervisor import event_of

STATE_EVENT = "PROCESS_STATE_"


def tokens(text: str) -> dict[str, str]:
    """`key:value key:value ...` as a dict."""
    return dict(token.split(":", 1) for token in text.split())


def next_notification(stdin: BinaryIO) -> tuple[dict[str, str], dict[str, str]]:
    """The header and the payload's first line of the next notification, as tokens."""
    header = tokens(stdin.readline().decode())
    payload = stdin.read(int(header["len"])).decode()
    return header, tokens(payload.split("\n", 1)[0])


def record(header: dict[str, str], fields: dict[str, str], events: Path, log: Path) -> None:
    eventname = header["eventname"]
    if not eventname.startswith(STATE_EVENT):
        return
    state = eventname.removeprefix(STATE_EVENT)
    event = event_of(state, fields, partial(log.read_text, errors="replace"))
    if event is not None:
        with events.open("a") as out:
            out.write(event.to_json() + "\n")


def main() -> None:
    events, log = map(Path, sys.argv[1:3])
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        stdout.write(b"READY\n")
        stdout.flush()
        header, fields = next_notification(stdin)
        record(header, fields, events, log)
        stdout.write(b"RESULT 2\nOK")
        stdout.flush()


if __name__ == "__main__":
    main()
