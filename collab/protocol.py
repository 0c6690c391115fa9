"""The y-websocket wire protocol as a sans-IO codec: bytes in, messages out.

One WebSocket binary frame carries one message: ``varUint(type)`` then a payload.
Framing primitives come from pycrdt (``write_var_uint``, ``write_message``, ``Decoder``);
this module adds what pycrdt's helpers leave out for untrusted input: bounds on varints,
truncation checks and a single error type, :class:`~collab.errors.ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pycrdt import Decoder, YMessageType, YSyncMessageType, write_message, write_var_uint

from .errors import ProtocolError

MESSAGE_AUTH: Final = 2
MESSAGE_QUERY_AWARENESS: Final = 3
AUTH_PERMISSION_DENIED: Final = 0
# lib0 varUints carry at most 53 bits: 8 bytes of 7 bits. Anything longer is hostile.
MAX_VARUINT_BYTES: Final = 8
EMPTY_UPDATE: Final = b"\x00\x00"
# The state vector of a client that holds nothing: a joiner.
EMPTY_STATE_VECTOR: Final = b"\x00"
# Inkroom's extension (docs/collab.md): "tell me when what I sent is stored". A client
# opts in by sending it; stock clients never do, so they are never sent one.
MESSAGE_SAVED: Final = 100
SAVED_REQUEST: Final = 0
SAVED_ACK: Final = 1


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """A peer's state vector; the answer is :class:`SyncStep2` with what it lacks."""

    state_vector: bytes

    def __bytes__(self) -> bytes:
        return _sync(YSyncMessageType.SYNC_STEP1, self.state_vector)


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """The reply to :class:`SyncStep1`: a v1 update with everything the peer is missing."""

    update: bytes

    def __bytes__(self) -> bytes:
        return _sync(YSyncMessageType.SYNC_STEP2, self.update)


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """A live document change (v1 update)."""

    update: bytes

    def __bytes__(self) -> bytes:
        return _sync(YSyncMessageType.SYNC_UPDATE, self.update)


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    """An awareness update, kept encoded; :mod:`collab.awareness` decodes its entries."""

    payload: bytes

    def __bytes__(self) -> bytes:
        return bytes((YMessageType.AWARENESS,)) + write_message(self.payload)


@dataclass(frozen=True, slots=True)
class PermissionDenied:
    """``messageAuth``: the stock client logs the reason; the server enforces by other means."""

    reason: str

    def __bytes__(self) -> bytes:
        return bytes((MESSAGE_AUTH, AUTH_PERMISSION_DENIED)) + write_message(
            self.reason.encode("utf-8")
        )


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """Asks the peer for every awareness state it knows."""

    def __bytes__(self) -> bytes:
        return bytes((MESSAGE_QUERY_AWARENESS,))


@dataclass(frozen=True, slots=True)
class SavedRequest:
    """From a client: acknowledge ``marker`` once everything this connection sent before
    it is durably stored."""

    marker: int

    def __bytes__(self) -> bytes:
        return bytes((MESSAGE_SAVED, SAVED_REQUEST)) + write_var_uint(self.marker)


@dataclass(frozen=True, slots=True)
class Saved:
    """To a client: everything it sent before its request ``marker`` is stored."""

    marker: int

    def __bytes__(self) -> bytes:
        return bytes((MESSAGE_SAVED, SAVED_ACK)) + write_var_uint(self.marker)


Message = (
    SyncStep1
    | SyncStep2
    | SyncUpdate
    | AwarenessMessage
    | PermissionDenied
    | QueryAwareness
    | SavedRequest
    | Saved
)


def _sync(sync_type: int, payload: bytes) -> bytes:
    return bytes((YMessageType.SYNC, sync_type)) + write_message(payload)


class Reader(Decoder):
    """pycrdt's :class:`~pycrdt.Decoder`, hardened for untrusted frames.

    pycrdt's decoder trusts its input: an over-long varint grows without bound and a
    truncated payload is silently returned short. Every read here either returns exactly
    what the frame declares or raises :class:`ProtocolError`.
    """

    def read_var_uint(self) -> int:
        if self.length <= 0:
            raise ProtocolError("truncated frame: expected a varUint")
        end = min(self.i0 + MAX_VARUINT_BYTES, len(self.stream))
        if all(b & 0x80 for b in self.stream[self.i0 : end]):
            if end - self.i0 >= MAX_VARUINT_BYTES:
                raise ProtocolError("varUint longer than 53 bits")
            raise ProtocolError("truncated frame: unterminated varUint")
        start = self.i0
        value = super().read_var_uint()
        if self.i0 - start > 1 and self.stream[self.i0 - 1] == 0:
            # lib0 never pads; a padded varint is a second spelling of the same frame.
            raise ProtocolError("non-canonical varUint")
        return value

    def read_payload(self) -> bytes:
        """Reads a ``varUint8Array``: a length, then exactly that many bytes."""
        length = self.read_var_uint()
        if length > self.length:
            raise ProtocolError(
                f"truncated frame: payload declares {length} bytes, {self.length} left"
            )
        start = self.i0
        self.i0 += length
        self.length -= length
        return bytes(self.stream[start : self.i0])

    def read_string(self) -> str:
        try:
            return self.read_payload().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("string is not valid UTF-8") from exc

    def expect_end(self) -> None:
        if self.length:
            raise ProtocolError(f"{self.length} trailing bytes after message")


def decode(frame: bytes) -> Message:
    """Decodes one frame.

    Raises:
        ProtocolError: empty, truncated, over-long or unknown messages, with an exact reason.
    """
    if not frame:
        raise ProtocolError("empty frame")
    reader = Reader(frame)
    kind = reader.read_var_uint()
    message: Message
    if kind == YMessageType.SYNC:
        sync_type = reader.read_var_uint()
        payload = reader.read_payload()
        if sync_type == YSyncMessageType.SYNC_STEP1:
            message = SyncStep1(payload)
        elif sync_type == YSyncMessageType.SYNC_STEP2:
            message = SyncStep2(payload)
        elif sync_type == YSyncMessageType.SYNC_UPDATE:
            message = SyncUpdate(payload)
        else:
            raise ProtocolError(f"unknown sync message type {sync_type}")
    elif kind == YMessageType.AWARENESS:
        message = AwarenessMessage(reader.read_payload())
    elif kind == MESSAGE_AUTH:
        auth_type = reader.read_var_uint()
        if auth_type != AUTH_PERMISSION_DENIED:
            raise ProtocolError(f"unknown auth message type {auth_type}")
        message = PermissionDenied(reader.read_string())
    elif kind == MESSAGE_QUERY_AWARENESS:
        message = QueryAwareness()
    elif kind == MESSAGE_SAVED:
        saved_type = reader.read_var_uint()
        if saved_type == SAVED_REQUEST:
            message = SavedRequest(reader.read_var_uint())
        elif saved_type == SAVED_ACK:
            message = Saved(reader.read_var_uint())
        else:
            raise ProtocolError(f"unknown saved message type {saved_type}")
    else:
        raise ProtocolError(f"unknown message type {kind}")
    reader.expect_end()
    return message


def encode(message: Message) -> bytes:
    """Encodes one message as the bytes of one binary frame."""
    return bytes(message)


def encode_update(update: bytes) -> bytes:
    """The frame for a live update: the hot path, so it skips the dataclass."""
    return _sync(YSyncMessageType.SYNC_UPDATE, update)


__all__ = [
    "EMPTY_STATE_VECTOR",
    "EMPTY_UPDATE",
    "AwarenessMessage",
    "Message",
    "PermissionDenied",
    "QueryAwareness",
    "Reader",
    "Saved",
    "SavedRequest",
    "SyncStep1",
    "SyncStep2",
    "SyncUpdate",
    "decode",
    "encode",
    "encode_update",
    "write_var_uint",
]
