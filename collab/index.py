"""What a room knows about its document's items without asking pycrdt: who wrote each
client id, how far each client's clock reaches, and where each item hangs.

A write policy must know where an incoming item goes: an item inserted next to another
one does not name its parent (Yjs copies it from its origin), so "is this a chat message
or a change to the lock" needs the origin's place. The index answers that in O(log n) per
lookup, fed by every change the room integrates, from any origin. Consecutive items of one
client in the same place share one segment. Places are kept only for documents whose
policy reads them (the classroom document); elsewhere the index is a state vector and
the owners of client ids, which cost nothing to keep.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator

from .updates import GC, ID, SKIP, Struct, Update

Place = tuple[str, str | None, int]
"""``(root, key, depth)``: the root type an item lives in; ``key`` the map key under the
root it hangs from (``None`` in an array); ``depth`` 1 for a direct child of the root.
"""


class _Segments:
    __slots__ = ("ends", "places", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.places: list[Place | None] = []

    def add(self, start: int, end: int, place: Place | None) -> None:
        if self.ends and start < self.ends[-1]:
            # Part of it is known (an update overlapping what we hold): keep the new tail.
            start = self.ends[-1]
            if start >= end:
                return
        if self.ends and self.ends[-1] == start and self.places[-1] == place:
            self.ends[-1] = end
            return
        self.starts.append(start)
        self.ends.append(end)
        self.places.append(place)

    def find(self, clock: int) -> tuple[bool, Place | None]:
        i = bisect_right(self.starts, clock) - 1
        if i < 0 or clock >= self.ends[i]:
            return False, None
        return True, self.places[i]


class DocumentIndex:
    """State vector, client-id owners and item places of one document."""

    def __init__(self, *, places: bool = True) -> None:
        self.tracks_places = places
        self.sv: dict[int, int] = {}
        self.owners: dict[int, str] = {}
        self._segments: dict[int, _Segments] = {}

    def place_of(self, item: ID) -> tuple[bool, Place | None]:
        """``(known, place)``: whether the item exists here, and where (``None`` for a
        garbage-collected range or an item whose parent is gone)."""
        segments = self._segments.get(item[0])
        if segments is None:
            return False, None
        return segments.find(item[1])

    def spans(self, client: int, clock: int, end: int) -> Iterator[tuple[int, int, Place | None]]:
        """The known segments of ``client`` overlapping ``[clock, end)``, clipped to it."""
        segments = self._segments.get(client)
        if segments is None:
            return
        i = max(0, bisect_right(segments.starts, clock) - 1)
        while i < len(segments.starts) and segments.starts[i] < end:
            lo, hi = max(clock, segments.starts[i]), min(end, segments.ends[i])
            if lo < hi:
                yield lo, hi, segments.places[i]
            i += 1

    def resolve(self, update: Update) -> dict[ID, Place | None]:
        """The place of every item of ``update``, looking up origins and parents here and
        inside the update itself (a sync message carries chains of items)."""
        local: dict[int, list[Struct]] = {}
        for s in update.structs():
            local.setdefault(s.client, []).append(s)
        starts: dict[int, list[int]] = {}
        for client, group in local.items():
            group.sort(key=lambda s: s.clock)
            starts[client] = [s.clock for s in group]
        places: dict[ID, Place | None] = {}

        def lookup(item: ID) -> tuple[bool, Place | None]:
            group = local.get(item[0])
            if group is not None:
                i = bisect_right(starts[item[0]], item[1]) - 1
                if i >= 0 and item[1] < group[i].clock + group[i].length:
                    s = group[i]
                    key = (s.client, s.clock)
                    if key in places:
                        return True, places[key]
                    if s.ref in (GC, SKIP):
                        return True, None
                    return False, None  # not resolved yet
            return self.place_of(item)

        pending = list(update.structs())
        while pending:
            progress = False
            rest = []
            for s in pending:
                ok, place = self._place(s, lookup)
                if ok:
                    places[(s.client, s.clock)] = place
                    progress = True
                else:
                    rest.append(s)
            if not progress:
                for s in rest:
                    places[(s.client, s.clock)] = None
                break
            pending = rest
        return places

    def _place(
        self, s: Struct, lookup: Callable[[ID], tuple[bool, Place | None]]
    ) -> tuple[bool, Place | None]:
        if s.ref in (GC, SKIP):
            return True, None
        if s.parent_root is not None:
            return True, (s.parent_root, s.parent_sub, 1)
        ref = s.parent_item or s.origin or s.right_origin
        if ref is None:
            return True, None
        ok, place = lookup(ref)
        if not ok:
            return False, None
        if place is None or s.parent_item is None:
            return True, place
        root, key, depth = place
        return True, (root, key, depth + 1)

    def integrate(self, update: Update, author: str | None) -> None:
        """Records what ``update`` (already applied to the document) added."""
        places = self.resolve(update) if self.tracks_places else {}
        sv = self.sv
        for client, _, group in update.groups:
            have = sv.get(client, 0)
            segments = self._segments.get(client)
            if segments is None and self.tracks_places:
                segments = self._segments[client] = _Segments()
            end = have
            for s in group:
                if s.ref == SKIP:
                    continue
                s_end = s.clock + s.length
                end = max(end, s_end)
                if s_end > have and segments is not None:
                    segments.add(s.clock, s_end, places.get((s.client, s.clock)))
            if end > have:
                sv[client] = end
                if author is not None:
                    self.owners.setdefault(client, author)
