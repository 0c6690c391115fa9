"""Frames nodes exchange over a bus, as a sans-IO codec: bytes in, frames out.

Every frame names the node that sent it and carries that node's sequence number for the
channel it travels on (per node, per document), so a receiver notices a lost frame as a
gap instead of diverging silently (Redis pub/sub is at-most-once).

Layout: ``u8 version``, ``varUint kind``, ``varString node``, ``varUint seq``,
``varString target`` (empty: every node), ``varUint arg``, ``varUint8Array payload``,
``varUint8Array extra``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from pycrdt import write_message, write_var_uint

from .errors import ProtocolError
from .protocol import Reader

VERSION: Final = 1
MAX_NODE_ID: Final = 64


class Kind(IntEnum):
    UPDATE = 0
    """``payload``: a v1 update applied by the sender (from its clients or server code)."""
    AWARENESS = 1
    """``payload``: awareness entries of the sender's own clients."""
    STATE = 2
    """``payload``: the sender's state vector; ``extra``: its delete-set digest;
    ``arg`` 1: the sender asks for everything it lacks *and* for the receivers' presence
    (a room that just loaded, or a node whose bus connection came back)."""
    DIFF = 3
    """``payload``: an update with what ``target`` lacked (the answer to a STATE); ``arg``
    1: the sender had nothing unsaved of its own when it sent it."""
    SAVED = 4
    """``arg``: the sender's own updates up to this sequence number are in the store."""
    HEARTBEAT = 5
    """Node channel: the sender is alive."""
    BYE = 6
    """Node channel: the sender is leaving; drop its presence now."""
    ASK = 7
    """Node channel: ``arg`` a question number, ``payload`` the question (every node
    answers; an admin listing rooms across nodes)."""
    ANSWER = 8
    """Node channel: to ``target``, the reply to its question ``arg``."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    node: str
    seq: int = 0
    target: str = ""
    arg: int = 0
    payload: bytes = b""
    extra: bytes = b""

    def __bytes__(self) -> bytes:
        return b"".join(
            (
                bytes((VERSION,)),
                write_var_uint(int(self.kind)),
                write_message(self.node.encode()),
                write_var_uint(self.seq),
                write_message(self.target.encode()),
                write_var_uint(self.arg),
                write_message(self.payload),
                write_message(self.extra),
            )
        )


def decode_frame(data: bytes) -> Frame:
    """Decodes one bus frame.

    Raises:
        ProtocolError: wrong version, unknown kind, truncated or trailing bytes.
    """
    if not data:
        raise ProtocolError("empty bus frame")
    if data[0] != VERSION:
        raise ProtocolError(f"bus frame version {data[0]} (expected {VERSION})")
    reader = Reader(data[1:])
    raw_kind = reader.read_var_uint()
    try:
        kind = Kind(raw_kind)
    except ValueError:
        raise ProtocolError(f"unknown bus frame kind {raw_kind}") from None
    node = reader.read_string()
    if not node or len(node) > MAX_NODE_ID:
        raise ProtocolError("bus frame node id must be 1..64 characters")
    seq = reader.read_var_uint()
    target = reader.read_string()
    arg = reader.read_var_uint()
    payload = reader.read_payload()
    extra = reader.read_payload()
    reader.expect_end()
    return Frame(kind, node, seq, target, arg, payload, extra)
