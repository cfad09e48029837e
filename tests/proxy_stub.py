"""A signing-in reverse proxy on 127.0.0.1, as Databricks Apps puts in front of an app, for the browser tests.

Every request it passes on, the websocket's upgrade request (``/_stcore/stream``) included, loses whatever identity
headers the client sent and gains the proxy's own: ``X-Forwarded-Email`` and ``X-Forwarded-Preferred-Username``
naming :attr:`IdentityProxy.user` (none when it is None), ``X-Forwarded-User`` (an id) and
``X-Forwarded-Access-Token`` (:attr:`IdentityProxy.token`, which the studio must never keep or show). Then it copies
bytes both ways. Plain HTTP requests are sent on with ``Connection: close``, so that each one's head passes through
here (no keep-alive connection carries a second request unseen); a websocket stays open until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

IDENTITY = ("x-forwarded-email", "x-forwarded-preferred-username", "x-forwarded-user", "x-forwarded-access-token")
HOP = ("connection", "keep-alive")
TOKEN = "dapi-proxy-stub-0123456789abcdef"  # what a user's forwarded token looks like; never to be seen again


def identity_headers(user: str | None, token: str = TOKEN) -> list[tuple[str, str]]:
    """What the proxy adds to a request while ``user`` is signed in (nothing when None)."""
    if user is None:
        return []
    return [("X-Forwarded-Email", user), ("X-Forwarded-Preferred-Username", user),
            ("X-Forwarded-User", "4242@1234567890"), ("X-Forwarded-Access-Token", token)]


class IdentityProxy:
    """``with IdentityProxy(upstream_port, user="a@x.org") as proxy:`` -> ``proxy.url``; set ``proxy.user`` between
    page loads to be someone else (each connection reads it when it opens)."""

    def __init__(self, upstream_port: int, user: str | None = None, token: str = TOKEN) -> None:
        self.upstream_port = upstream_port
        self.user = user
        self.token = token
        self.upgrades = 0  # websocket upgrade requests passed on (a browser session opens one)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="identity-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> IdentityProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def rewrite(self, head: bytes, user: str | None) -> bytes:
        """A request's head as passed on: the client's identity (and hop) headers out, the proxy's in."""
        lines = head.decode("latin-1").split("\r\n")
        request, fields = lines[0], [line for line in lines[1:] if line]
        upgrade = any(f.lower().startswith("upgrade:") and "websocket" in f.lower() for f in fields)
        kept = [f for f in fields if f.split(":", 1)[0].strip().lower() not in IDENTITY
                and (upgrade or f.split(":", 1)[0].strip().lower() not in HOP)]
        added = [f"{name}: {value}" for name, value in identity_headers(user, self.token)]
        if not upgrade:
            added.append("Connection: close")
        else:
            self.upgrades += 1
        return "\r\n".join([request, *kept, *added, "", ""]).encode("latin-1")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_writer.write(self.rewrite(head, self.user))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until ``source`` ends (or either side fails), then close ``sink``."""
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    sink.close()
