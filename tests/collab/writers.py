"""Three writers editing one document in random steps, syncing with each other now and
then, so later updates build on other writers' earlier ones: logs for property tests of
the store (compaction, bundled rows)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

Step = tuple[int, str, int, str]  # (writer, op, number, text)


def plans(max_text: int, max_steps: int) -> st.SearchStrategy[list[Step]]:
    return st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from(["push", "insert", "delete", "map", "text", "untext", "sync"]),
            st.integers(0, 1000),
            st.text(alphabet="abxy", min_size=1, max_size=max_text),
        ),
        min_size=1,
        max_size=max_steps,
    )


def play(plan: list[Step], pushed: Callable[[int, str], Any]) -> list[tuple[int, bytes]]:
    """Runs ``plan``; every writer's own updates, in order, as ``(writer, update)``.
    ``pushed(number, text)`` is what a "push" appends."""
    docs: list[Doc[Any]] = [Doc() for _ in range(3)]
    log: list[tuple[int, bytes]] = []
    for who, doc in enumerate(docs):
        doc.observe(lambda event, who=who: log.append((who, event.update)))
    for who, op, n, s in plan:
        doc = docs[who]
        a, m, t = doc.get("a", type=Array), doc.get("m", type=Map), doc.get("t", type=Text)
        if op == "sync":
            other = docs[(who + 1) % 3]
            doc.apply_update(other.get_update(doc.get_state()))
        elif op == "push":
            a.append(pushed(n, s))
        elif op == "insert":
            a.insert(n % (len(a) + 1), s)
        elif op == "delete" and len(a):
            del a[n % len(a)]
        elif op == "map":
            m[s] = n
        elif op == "text":
            t.insert(n % (len(t) + 1), s)
        elif op == "untext" and len(t):
            del t[n % len(t)]
    # A sync re-logs the other writer's update (applied as remote): keep the first sighting.
    unique: list[tuple[int, bytes]] = []
    seen: set[bytes] = set()
    for who, u in log:
        if u not in seen:
            seen.add(u)
            unique.append((who, u))
    return unique


def content(updates: list[bytes], *, together: bool) -> dict[str, Any]:
    """What the three writers' roots hold after ``updates``: applied in one transaction
    (``together``), or one at a time (where pycrdt 0.14 can lose an item that arrives
    before what it builds on)."""
    doc: Doc[Any] = Doc()
    if together:
        with doc.transaction():
            for u in updates:
                doc.apply_update(u)
    else:
        for u in updates:
            doc.apply_update(u)
    return {
        "a": doc.get("a", type=Array).to_py(),
        "m": doc.get("m", type=Map).to_py(),
        "t": str(doc.get("t", type=Text)),
    }
