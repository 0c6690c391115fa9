"""The server's policy for collab rooms: who may write, what reacts to room lifecycle.

Later issues (board lock, billing access, SFU spotlight) observe classroom documents here;
the core only asks :meth:`can_write` and announces loads and unloads.
"""

from __future__ import annotations

from collab.ports import Peer
from collab.room import Room


class ClassroomHooks:
    def can_write(self, peer: Peer, room: Room) -> bool:
        return not peer.read_only

    def on_room_loaded(self, room: Room) -> None:
        return None

    def on_room_unloaded(self, room: Room) -> None:
        return None
