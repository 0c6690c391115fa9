"""The admin's view across nodes: every node answers for its own rooms and connections.

An admin call reaches one node. It asks every node over the bus (:meth:`Bus.ask`): each
answers from its own registry (the rooms it holds, the connections it serves) or ends its
own matching connections, and the asking node merges the replies. A node that does not
answer before the deadline is named in ``missing``, never silently left out; a lone node
answers itself at once.

Questions are JSON: ``{"op": "rooms"}`` or ``{"op": "end", "user"?, "document"?,
"code", "reason"}``. Role changes need no question: they are writes to the classroom
document, which reaches every node holding it (:mod:`server.classroom`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final

from collab.errors import CloseCode, ConnectionEnded
from collab.ports import AskHandler, DocumentName, NodeId, Peer

from .classroom import class_of, effective_peer
from .state import AppState

log = logging.getLogger("inkroom.server.cluster")

# How long an admin call waits for the other nodes' replies.
WAIT: Final = 2.0
# Connections one node lists at most (a reply is one bus frame, held in memory).
MAX_LISTED: Final = 5000
_ENDING_CODES: Final = {int(CloseCode.FORBIDDEN), int(CloseCode.NOT_FOUND)}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def local_rooms(state: AppState) -> tuple[list[dict[str, Any]], bool]:
    """The rooms this node holds, each connection as its classroom document says it is now
    (a role override applies); and whether the listing was cut at :data:`MAX_LISTED`."""
    node = state.registry.bus.node_id
    rooms = state.registry.rooms
    tracked = {(e.user_id, e.document): e for e in state.connections.entries() if not e.ended}
    out: list[dict[str, Any]] = []
    listed = 0
    for name, room in sorted(rooms.items()):
        class_room = rooms.get(class_of(name))
        connections = []
        for client in list(room.clients.values())[: max(0, MAX_LISTED - listed)]:
            peer = effective_peer(client.peer, class_room.doc if class_room else None)
            frames, queued = client.outbox_depth
            extra = tracked.get((peer.user_id, name))
            connections.append(
                {
                    "client": client.id,
                    "user_id": peer.user_id,
                    "name": peer.name,
                    "role": peer.role,
                    "read_only": peer.read_only,
                    "node": node,
                    "connected_since": _iso(client.connected_at),
                    "bytes_in": client.bytes_in,
                    "bytes_out": client.bytes_out,
                    "outbox_frames": frames,
                    "outbox_bytes": queued,
                    "device": extra.device if extra else "",
                    "address": extra.address if extra else "",
                }
            )
        listed += len(connections)
        out.append(
            {
                "name": name,
                "node": node,
                "size": room.size,
                "clients": len(room.clients),
                "connections": connections,
            }
        )
    return out, listed >= MAX_LISTED


def end_local(
    state: AppState, user: str | None, document: str | None, code: int, reason: str
) -> int:
    """Ends this node's connections of ``user`` (to ``document``, if given); returns how
    many. Raises ``ValueError`` when neither is given or the code is not an ending one."""
    if user is None and document is None:
        raise ValueError("name a user, a document, or both")
    if code not in _ENDING_CODES:
        raise ValueError(f"close code {code} is not one an admin ends connections with")

    def match(name: DocumentName, peer: Peer) -> bool:
        return (user is None or peer.user_id == user) and (document is None or name == document)

    error = ConnectionEnded(reason[:120], CloseCode(code))
    return state.registry.end_connections(match, error)


def answerer(state: AppState) -> AskHandler:
    """Answers the questions of :mod:`server.cluster` for this node."""

    def answer(question: bytes) -> bytes:
        body = json.loads(question)
        op = body.get("op")
        if op == "rooms":
            rooms, cut = local_rooms(state)
            return json.dumps({"rooms": rooms, "truncated": cut}).encode()
        if op == "end":
            if body.get("document") is not None:
                # A deletion asks every node to end the document's connections: new joins
                # to it must not pass on a verdict kept from before (server/join_gate.py).
                state.join_gate.forget(document=str(body["document"]))
            ended = end_local(
                state, body.get("user"), body.get("document"), body["code"], body["reason"]
            )
            if ended:
                log.info("connections ended for an admin", extra={"ended": ended})
            return json.dumps({"ended": ended}).encode()
        raise ValueError(f"unknown question {op!r:.40}")

    return answer


async def ask(state: AppState, question: dict[str, Any]) -> tuple[dict[NodeId, Any], list[str]]:
    """Every node's reply to ``question`` (this node's included), decoded; and the nodes
    that did not answer in :data:`WAIT` seconds.

    Raises:
        BusUnavailable: too many questions in flight.
    """
    answers = await state.registry.bus.ask(json.dumps(question).encode(), wait=WAIT)
    replies: dict[NodeId, Any] = {}
    missing = list(answers.missing)
    for node, raw in answers.replies.items():
        try:
            replies[node] = json.loads(raw)
        except ValueError:
            log.warning("unreadable reply from a node", extra={"peer": node})
            missing.append(node)
    return replies, sorted(missing)


async def rooms(state: AppState) -> dict[str, Any]:
    """Every node's rooms, one entry per document and node holding it."""
    replies, missing = await ask(state, {"op": "rooms"})
    merged = [room for reply in replies.values() for room in reply.get("rooms", [])]
    merged.sort(key=lambda r: (r["name"], r["node"]))
    return {
        "rooms": merged,
        "nodes": {"answered": sorted(replies), "missing": missing},
        "truncated": any(reply.get("truncated") for reply in replies.values()),
    }


async def end(
    state: AppState, user: str | None, document: str | None, code: int, reason: str
) -> dict[str, Any]:
    """Ends the matching connections on every node; how many, and who did not answer."""
    if user is None and document is None:
        raise ValueError("name a user, a document, or both")
    question = {"op": "end", "user": user, "document": document, "code": code, "reason": reason}
    replies, missing = await ask(state, question)
    return {
        "ended": sum(int(r.get("ended", 0)) for r in replies.values()),
        "nodes": {"answered": sorted(replies), "missing": missing},
    }


def user_classrooms(listing: dict[str, Any], user: str) -> set[str]:
    """The classrooms ``user`` has connections in, from a :func:`rooms` listing."""
    return {
        room["name"].split("/", 1)[0]
        for room in listing["rooms"]
        if any(c["user_id"] == user for c in room["connections"])
    }
