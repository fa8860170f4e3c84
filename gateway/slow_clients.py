"""Deadlines against slow clients at the HTTP layer, where the application cannot see them.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but holds a new
connection that sends nothing, or a request's headers trickling in, forever (slowloris): the
app is only called once the headers are complete. This protocol (uvicorn's httptools one, which
`http="auto"` picks) closes a connection whose request headers are not complete within
`header_timeout_s` of the connection opening or of the request's first byte, answering 408. The
body's deadline is the app's (gateway/deps.py read_body: it knows which routes read one).
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    b"content-length: %d\r\n\r\n%s")
BODY = (b'{"error":{"message":"the request headers were not received in time","type":"invalid_request_error",'
        b'"param":null,"code":"request_timeout"}}')


class HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        log.info("closing a connection from %s: no complete request headers in %.0fs", self.client,
                 self.header_timeout_s)
        self.transport.write(TIMEOUT_RESPONSE % (len(BODY), BODY))
        self.transport.close()


def header_deadline_protocol(header_timeout_s: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class to give uvicorn (it instantiates it per connection)."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s})
