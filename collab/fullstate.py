"""A document's full state, encoded once and shared by every client that joins empty.

At the start of the hour every student opens the board at once. Encoding a 2 MB board
for each of them, cutting it into slices and compressing each slice, is the cost of a
join; done once and shared, a join costs little more than writing the frames.

The shared state may be a little behind the document: each joiner gets the shared slices,
then its own last SyncStep2 holding everything that changed since they were encoded
(computed when it is sent, so nothing in between is missed). Changes never make a joiner
receive a stale document; they only make that last message grow, and once it would
grow past a quarter of the shared state, the next joiner triggers a fresh encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from .protocol import encode_update
from .slices import iter_slices

# The shared state is encoded again once the document has grown by this share of it
# (bytes integrated since) or this many bytes, whichever is larger: joiners then get a
# short last message, and a busy board is not re-encoded on every stroke.
REBUILD_SHARE: Final = 4
REBUILD_MIN_BYTES = 64 * 1024  # not Final: tests lower it


class FullState:
    """The document at one moment, as SyncUpdate frames cut on demand and kept.

    Frames are cut lazily: the first joiner's first slice leaves after reading its own
    bytes, and later joiners take the frames already cut.
    """

    __slots__ = ("_pieces", "frames", "size", "slice_bytes", "state_vector", "written_at")

    def __init__(
        self, update: bytes, state_vector: bytes, *, written_at: int, slice_bytes: int
    ) -> None:
        self.state_vector = state_vector
        self.size = len(update)
        self.slice_bytes = slice_bytes
        # The room's running total of integrated bytes when this was encoded.
        self.written_at = written_at
        self.frames: list[bytes] = []
        self._pieces: Iterator[bytes] | None = iter_slices(update, slice_bytes)

    def frame(self, index: int) -> bytes | None:
        """The ``index``-th frame, cut now if nobody has needed it yet; ``None`` past the
        last."""
        while index >= len(self.frames):
            if self._pieces is None:
                return None
            piece = next(self._pieces, None)
            if piece is None:
                self._pieces = None  # drops the reference to the whole update
                return None
            self.frames.append(encode_update(piece))
        return self.frames[index]

    def stale(self, written: int) -> bool:
        """Whether the document has moved on enough since (``written`` is the room's
        running total of integrated bytes) to encode it again."""
        return written - self.written_at > max(self.size // REBUILD_SHARE, REBUILD_MIN_BYTES)


@dataclass(slots=True)
class SyncReply:
    """A large SyncStep2 answer for one client: the shared frames of ``base``, if any,
    then SyncStep2 with ``rest()``, the update from ``base`` (or from the client's own
    state) to the document as it is when that last part is sent. A large ``rest()`` may
    itself be shared (every joiner of a storm needs the same): its frames, then an empty
    SyncStep2."""

    base: FullState | None
    rest: Callable[[], bytes | FullState]
