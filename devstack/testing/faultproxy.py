"""A TCP proxy a test (or `make chaos`) puts between a service and a dependency, and then cuts or
poisons.

Written by hand: toxiproxy, the usual tool, is a server binary that cannot be installed here,
and a fault test needs only these few behaviours. Runs its own event loop in a thread, so
synchronous tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from enum import Enum
from urllib.parse import urlsplit, urlunsplit


class Mode(Enum):
    PASS = "pass"  # forward bytes both ways
    CUT = "cut"  # close every connection; new ones are closed on accept (connection reset)
    HTTP_500 = "http_500"  # answer every HTTP request with a 500 in place of the upstream
    GARBAGE = "garbage"  # answer every HTTP request with a 200 whose body is not the contract
    # Forward nothing either way, close nothing, accept new connections: a frozen server
    # (SIGSTOP) or a black hole, as its clients see it. Back in PASS, what waited goes on.
    HOLD = "hold"


def _http_response(status: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


CANNED = {
    Mode.HTTP_500: _http_response(
        "500 Internal Server Error", b'{"errorMessage": "injected fault", "errorCode": "500"}'
    ),
    Mode.GARBAGE: _http_response("200 OK", b'[{"unexpected": "shape"}]'),
}


class FaultProxy:
    """`http=True` makes it read HTTP/1.1 request framing, so that `hold(b"DELETE")` can stall
    exactly the requests of one method, on connections already open too."""

    def __init__(
        self, upstream_port: int | None = None, upstream_host: str = "127.0.0.1", http: bool = False
    ):
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.http = http
        self.mode = Mode.PASS
        self.held_method: bytes | None = None
        self.failed_method: bytes | None = None  # answered with a 500, never forwarded
        self.holding = threading.Event()  # set once a request is being held
        self._released = asyncio.Event()  # set by release(): held requests go on
        self.reply_to_lose: tuple[bytes, bytes] | None = None  # (after, to), see lose_reply
        self.lost = threading.Event()  # set once a reply was lost
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()  # clear while in HOLD mode
        self._flowing.set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def via(self, url: str) -> str:
        """The same URL (credentials, path and all), with this proxy in place of the upstream."""
        parts = urlsplit(url)
        credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{self.port}"))

    def start(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def set_mode(self, mode: Mode) -> None:
        """Switch behaviour; cutting (or answering in place of the upstream) also closes the
        connections already open; holding keeps them, frozen."""
        self.mode = mode
        flowing = self._flowing.set if mode is not Mode.HOLD else self._flowing.clear
        self._loop.call_soon_threadsafe(flowing)
        if mode not in (Mode.PASS, Mode.HOLD):
            self._loop.call_soon_threadsafe(self._close_all)

    def hold(self, method: bytes | None) -> None:
        """Stall every request of `method` (not forwarded, not answered); None holds no more
        (what is held stays so until `release` or the connection's end)."""
        self.holding.clear()
        self.held_method = method
        self._released = asyncio.Event()

    def release(self) -> None:
        """Forward the held requests after all, and hold no more."""
        self.held_method = None
        self._loop.call_soon_threadsafe(self._released.set)

    def fail(self, method: bytes | None) -> None:
        """Answer every request of `method` with a 500 (HTTP proxies); None stops."""
        self.failed_method = method

    def lose_reply(self, to: bytes, after: bytes) -> None:
        """Once: on a connection where a client chunk holding `after` has passed, forward the
        next chunk holding `to`, drop what the server answers, and cut the connection. The
        server did the work; the client cannot know (a COMMIT whose outcome is unknown)."""
        self.lost.clear()
        self.reply_to_lose = (after, to)

    def heal(self) -> None:
        """Back to passing everything: no mode, hold, failure or lost reply left."""
        self.hold(None)
        self.fail(None)
        self.reply_to_lose = None
        self.set_mode(Mode.PASS)

    def close(self) -> None:
        """Stop accepting, end every connection and task, then the loop: nothing left pending."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        self._close_all()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A connection's task ends quietly when `close` cancels it: asyncio's stream server
        # (3.11) would otherwise log the cancellation as an error of its own callback.
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        if mode is Mode.CUT:
            writer.transport.abort()
            return
        if mode in CANNED:
            with contextlib.suppress(Exception):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(CANNED[mode])
                await writer.drain()
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        if self.reply_to_lose is not None:
            await self._lose_one_reply(reader, writer, up_reader, up_writer)
            return
        forward = (
            functools.partial(self._forward_requests, client=writer) if self.http else self._pipe
        )
        await asyncio.gather(
            forward(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _lose_one_reply(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        sent = asyncio.Event()  # the chunk whose reply is to be lost went upstream

        async def requests() -> None:
            seen_after = False
            while data := await reader.read(65536):
                rule = self.reply_to_lose
                if rule is not None and seen_after and rule[1] in data:
                    self.reply_to_lose = None
                    sent.set()
                seen_after = seen_after or (rule is not None and rule[0] in data)
                up_writer.write(data)
                await up_writer.drain()

        async def replies() -> None:
            while data := await up_reader.read(65536):
                if sent.is_set():  # the server answered: the work is done, the answer lost
                    writer.transport.abort()
                    up_writer.transport.abort()
                    self.lost.set()
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(requests(), replies(), return_exceptions=True)
        for end in (writer, up_writer):
            self._writers.discard(end)
            end.close()

    async def _forward_requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
    ) -> None:
        """Forward request by request (head, then Content-Length bytes of body)."""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method = head.split(b" ", 1)[0]
                if method == self.failed_method:
                    client.write(CANNED[Mode.HTTP_500])  # `Connection: close`: this one ends
                    await client.drain()
                    client.close()
                    return
                if method == self.held_method:
                    self.holding.set()
                    await self._released.wait()  # or until the connection is aborted
                await self._flowing.wait()
                headers = head.lower()
                if b"transfer-encoding: chunked" in headers:
                    writer.write(head)
                    await self._pipe(reader, writer)  # no framing to follow: plain bytes
                    return
                length = 0
                for line in headers.split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                # The head goes first: a client that sent `Expect: 100-continue` waits for the
                # upstream's answer before it sends the body.
                writer.write(head)
                await writer.drain()
                while length > 0:
                    chunk = await reader.read(min(length, 65536))
                    if not chunk:
                        raise asyncio.IncompleteReadError(b"", length)
                    await self._flowing.wait()
                    writer.write(chunk)
                    await writer.drain()
                    length -= len(chunk)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()
