"""The admin inspector's operations on live rooms and stored documents (no HTTP here).

"What is the document now" reads the live room when the document is loaded (it holds
updates not saved yet); history questions save pending updates first, so the log they
read is complete up to the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pycrdt import Doc, Map

from collab.adapters.sql_store import SqlStore
from collab.content import data_kinds, forward_change, from_data, from_update, to_data
from collab.errors import CloseCode
from collab.ports import DocumentName, PastState, Store
from collab.updates import decode_state_vector

from . import cluster
from .attendance import Attendance, presence
from .classroom import OVERRIDES, ROLE_KEY, class_of, role_overrides
from .deletions import deletion_table, is_deleted
from .errors import NotFound
from .state import AppState


class Inspector:
    """Reads and changes documents and connections on behalf of an admin."""

    def __init__(self, state: AppState, store: Store | None = None) -> None:
        self._state = state
        self.store: Store = store or SqlStore(state.engine)

    # -- live rooms ------------------------------------------------------------------

    async def rooms(self) -> dict[str, Any]:
        """Every node's rooms with their connections, and the nodes that did not answer."""
        return await cluster.rooms(self._state)

    # -- documents -------------------------------------------------------------------

    async def current(self, name: DocumentName) -> tuple[Doc[Any], bool]:
        """The document now (live room if loaded), and whether it is loaded."""
        room = self._state.registry.rooms.get(name)
        if room is not None:
            return room.doc, True
        loaded = await self.store.load(name)
        return loaded.to_doc(), False

    async def document(self, name: DocumentName) -> dict[str, Any]:
        doc, live = await self.current(name)
        update = doc.get_update()
        vector = decode_state_vector(doc.get_state())
        return {
            "name": name,
            "loaded": live,
            "deleted": await self.deleted(name),
            "size": len(update),
            "state_vector": {str(k): v for k, v in sorted(vector.items())},
            "content": to_data(doc),
        }

    async def save_pending(self) -> None:
        await self._state.registry.save_now()

    async def state_at(self, name: DocumentName, at: datetime) -> PastState:
        await self.save_pending()
        return await self.store.state_at(name, at)

    async def import_update(self, name: DocumentName, update: bytes) -> int:
        """Merges ``update`` into the document as a server write; returns the bytes the
        document changed by. Raises ``ValueError`` for a corrupt update."""
        from_update(update)  # judged on a scratch document first: a corrupt one stops here
        async with self._state.registry.hold(name) as room:
            before = len(room.doc.get_update())
            with room.doc.transaction():
                room.doc.apply_update(update)
            return len(room.doc.get_update()) - before

    async def import_data(self, name: DocumentName, body: Any) -> int:
        """Makes the document's content ``body["content"]`` (plain data, as exported with
        ``format=json``; ``body["shared"]`` names nested shared types) as one forward
        change; returns its size in bytes. Roots the body lacks are emptied.

        Raises:
            ValueError: the body is not such an object; nothing was changed.
        """
        if not isinstance(body, dict) or "content" not in body:
            raise ValueError('body must be {"content": {root: data}, "shared": [paths]?}')
        content, shared = body["content"], body.get("shared")

        def plan(current: bytes) -> bytes:
            # Built on a scratch document first: a malformed body stops here, untouched.
            target = from_data(content, shared)  # raises ValueError for anything malformed
            return forward_change(current, target, data_kinds(content))

        return await self._converge(name, plan)

    async def _converge(self, name: DocumentName, plan: Callable[[bytes], bytes]) -> int:
        """Applies ``plan(current content)``, a forward change computed in a worker thread
        (a large board takes seconds, which would stall every room of the node), to the
        live document as one server write. Clients' writes that land meanwhile stay: the
        change merges with them like any concurrent update."""
        async with self._state.registry.hold(name) as room:
            change = await asyncio.to_thread(plan, room.doc.get_update())
            if change:
                with room.doc.transaction():
                    room.doc.apply_update(change)
        return len(change)

    async def restore(self, name: DocumentName, at: datetime) -> dict[str, Any]:
        """Makes the document's content what it was at ``at``, as a new forward change
        (one server-origin update every client receives like any other)."""
        past = await self.state_at(name, at)

        def plan(current: bytes) -> bytes:
            return forward_change(current, from_update(past.update))

        change = await self._converge(name, plan)
        return {"restored_to": at.isoformat(), "seq": past.seq, "change_bytes": change}

    # -- connections -----------------------------------------------------------------

    async def end(self, user_id: str, document: str | None) -> dict[str, Any]:
        """Ends the user's connections on whichever node serves them."""
        return await cluster.end(
            self._state, user_id, document, CloseCode.FORBIDDEN, "ended by an administrator"
        )

    async def set_role(self, user_id: str, role: str | None, classroom: str) -> None:
        """Lowers ``user_id``'s role in ``classroom`` to ``role`` (``None``: restores the
        role their token carries), as a write to the classroom document's ``state``. It
        reaches every node holding the classroom and lasts across reconnects; the next
        write of that user is judged with it, on the connection they have.

        Raises:
            ValueError: ``role`` is not a downgrade (student or observer).
        """
        if role is not None and role not in OVERRIDES:
            raise ValueError(f"role must be one of {', '.join(OVERRIDES)}, or null to restore")
        async with self._state.registry.hold(class_of(classroom)) as room:
            state = room.doc.get("state", type=Map)
            key = ROLE_KEY + user_id
            with room.doc.transaction():
                if role is not None:
                    state[key] = role
                elif key in state:
                    del state[key]
            # A user told once that a write was refused is told again for the next one.
            for client in room.clients.values():
                if client.peer.user_id == user_id:
                    client.denied_notified = False

    async def roles(self, classroom: str) -> dict[str, str]:
        doc, _ = await self.current(class_of(classroom))
        return role_overrides(doc)

    # -- deletion --------------------------------------------------------------------

    async def deleted(self, name: str) -> bool:
        return await asyncio.to_thread(is_deleted, self._state.engine, name)

    def set_deleted(self, name: str, deleted: bool, actor: str) -> None:
        with self._state.engine.begin() as conn:
            conn.execute(deletion_table.delete().where(deletion_table.c.name == name))
            if deleted:
                conn.execute(
                    deletion_table.insert().values(
                        name=name, deleted_at=datetime.now(UTC), deleted_by=actor[:255]
                    )
                )

    async def delete(self, name: str, actor: str) -> int:
        """Hides the document: new connections are refused (4404), open ones ended. Its
        log is kept, so :meth:`undelete` brings it back whole."""
        await asyncio.to_thread(self.set_deleted, name, True, actor)
        self._state.join_gate.forget(document=name)
        ended = await cluster.end(self._state, None, name, CloseCode.NOT_FOUND, "document deleted")
        return int(ended["ended"])

    # -- attendance ------------------------------------------------------------------

    def attendance(
        self, classroom: str, since: datetime | None, until: datetime | None
    ) -> dict[str, Any]:
        visits = Attendance(self._state.engine).visits([classroom], since=since, until=until)
        return {
            "classroom": classroom,
            "generated_at": int(time.time()),
            "present": [v.public() for v in presence(visits)],
            "connections": [{**v.public(), "document": v.document} for v in visits],
        }


def billing_attendance(state: AppState, account_id: str | None) -> list[dict[str, Any]]:
    """Attendance in the classrooms an account owns (``acct-N``), for billing disputes.
    Synchronous (billing reads in a thread)."""
    if not account_id or not account_id.startswith("acct-") or not account_id[5:].isdigit():
        return []
    account = state.directory.account(int(account_id[5:]))
    if account is None:
        return []
    classrooms = [c.id for c in state.directory.classrooms(account)]
    if not classrooms:
        return []
    visits = Attendance(state.engine).visits(classrooms)
    by_room: dict[str, list[Any]] = {}
    for v in visits:
        by_room.setdefault(v.document.split("/", 1)[0], []).append(v)
    return [
        {**stay.public(), "classroom": room}
        for room, group in sorted(by_room.items())
        for stay in presence(group)
    ]


__all__ = ["Inspector", "NotFound", "billing_attendance"]
