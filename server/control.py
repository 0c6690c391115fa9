"""Control calls between nodes: what each one ends, and how ``server`` publishes them.

The bus carries a :class:`~collab.ports.ControlCall` to every node at least once; each
node applies it to its own connections. Applying twice is harmless (nothing left to end).
"""

from __future__ import annotations

import logging

from collab import metrics
from collab.errors import CloseCode, ConnectionEnded
from collab.ports import ControlCall, ControlHandler, ControlKind, DocumentName, Peer
from collab.registry import Registry

from .join_gate import JoinGate

log = logging.getLogger("inkroom.server.control")

# Permanent codes (4400-4499): the stock client does not reconnect on its own.
_CODES = {
    ControlKind.END_USER: (CloseCode.FORBIDDEN, "your connection was ended by staff"),
    ControlKind.END_CLASSROOM: (CloseCode.NOT_FOUND, "this classroom was closed"),
    ControlKind.ACCESS_REVOKED: (CloseCode.UNAUTHORIZED, "access revoked"),
    ControlKind.CLASSROOM_ARCHIVED: (CloseCode.GONE, "archived"),
}


def matches(call: ControlCall, document: DocumentName, peer: Peer) -> bool:
    """Whether ``call`` selects a connection of ``peer`` to ``document``."""
    if call.user is None and call.classroom is None:
        return False
    if call.user is not None and peer.user_id != call.user:
        return False
    return call.classroom is None or document.split("/", 1)[0] == call.classroom


def apply(registry: Registry, call: ControlCall) -> int:
    """Ends this node's connections ``call`` selects; returns how many."""
    code, default_reason = _CODES[call.kind]
    error = ConnectionEnded(call.reason or default_reason, code)
    ended = registry.end_connections(lambda doc, peer: matches(call, doc, peer), error)
    metrics.CONTROL_CALLS.labels(registry.bus.node_id, call.kind.value).inc()
    log.info(
        "control call applied",
        extra={"call": call.kind.value, "classroom": call.classroom, "ended": ended},
    )
    return ended


def applier(registry: Registry, gate: JoinGate | None = None) -> ControlHandler:
    """Applies control calls; an archive also drops ``gate``'s kept verdicts for the
    classroom, so this node refuses new joins to it at once, not after the gate's 2 s."""

    def handle(call: ControlCall) -> None:
        if gate is not None and call.kind is ControlKind.CLASSROOM_ARCHIVED and call.classroom:
            gate.forget(classroom=call.classroom)
        apply(registry, call)

    return handle
