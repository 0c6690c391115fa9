"""Folding a log into a snapshot: pure, so it can run in a thread and be property-tested."""

from __future__ import annotations

from collections.abc import Sequence

from pycrdt import merge_updates


def fold(snapshot: bytes | None, tail: Sequence[bytes]) -> bytes:
    """Merges a snapshot and the updates after it into one update with the same content.

    ``merge_updates`` keeps every item and tombstone, so the result applies to exactly the
    document that applying ``snapshot`` then ``tail`` would give: never an empty document
    because a step was skipped (the pycrdt-store squash bug), never a reordered history.
    """
    parts = ([snapshot] if snapshot is not None else []) + [u for u in tail if u]
    if not parts:
        return b"\x00\x00"
    if len(parts) == 1:
        return parts[0]
    return merge_updates(*parts)
