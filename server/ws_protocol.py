"""uvicorn's sans-IO WebSocket protocol plus a synchronous send for the broadcast hot path.

Through ASGI, every frame to every reader costs a task wake-up, an ``await`` chain through
the server's ``send`` and a frame serialisation: measured at 46-97 us per frame against
15-36 us for the Node reference server (bench/RESULTS.md). ``send_nowait`` writes a
binary message to the transport at once when the connection can take it without
waiting, and reports ``False`` otherwise so the caller queues it for the ordinary path.
It is offered to the application as the ASGI scope extension ``inkroom.send_nowait``.
"""

from __future__ import annotations

import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

EXTENSION = "inkroom.send_nowait"
# Server-to-client frames are never masked (RFC 6455 5.1): FIN + binary opcode, then length.
_FIN_BINARY = 0x82


def binary_frame(data: bytes) -> bytes:
    """One unmasked, unfragmented binary frame (RFC 6455 5.2)."""
    n = len(data)
    if n < 126:
        return bytes((_FIN_BINARY, n)) + data
    if n < 1 << 16:
        return struct.pack("!BBH", _FIN_BINARY, 126, n) + data
    return struct.pack("!BBQ", _FIN_BINARY, 127, n) + data


class InkroomWebSocketProtocol(WebSocketsSansIOProtocol):
    """Adds :meth:`send_nowait`; everything else is uvicorn's."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = self.send_nowait

    def send_nowait(self, data: bytes) -> bool:
        """Writes ``data`` as one binary message now; ``False`` if it would have to wait.

        It waits when the transport is paused (the peer reads slowly), before the
        handshake completes and after a close. With a negotiated extension (compression)
        the frame goes through websockets' own encoder, which applies it.
        """
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        if self.conn.extensions:
            self.conn.send_binary(data)
            self.transport.write(b"".join(self.conn.data_to_send()))
        else:
            self.transport.write(binary_frame(data))
        return True
