"""What every :class:`~collab.ports.Store` answers about history: run against the memory
store, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pycrdt import Array, Doc

from collab.ports import DocumentName, HistoryEntry, Store, StoredUpdate

NAME = DocumentName("c1/board")
T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
AUTHORS = ["ada", "bo", None]


def scripted(n: int) -> tuple[list[StoredUpdate], list[list[int]]]:
    """``n`` updates, one a second from :data:`T0`, authors in turn; and the content of
    the array after each one."""
    doc: Doc[Any] = Doc()
    out: list[bytes] = []
    doc.observe(lambda e: out.append(e.update))
    arr = doc.get("a", type=Array)
    seen: list[list[int]] = []
    for i in range(n):
        if i % 5 == 4:
            del arr[0]
        else:
            arr.append(i)
        seen.append(list(arr.to_py()))
    updates = [
        StoredUpdate(u, AUTHORS[i % 3], T0 + timedelta(seconds=i)) for i, u in enumerate(out)
    ]
    return updates, seen


def content(update: bytes) -> list[int]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return [int(v) for v in doc.get("a", type=Array).to_py()]


async def walk(store: Store, limit: int, **filters: Any) -> list[HistoryEntry]:
    entries: list[HistoryEntry] = []
    after = 0
    for _ in range(1000):
        page = await store.history(NAME, after=after, limit=limit, **filters)
        assert len(page.entries) <= limit
        entries += page.entries
        if page.next_after is None:
            return entries
        after = page.next_after
    raise AssertionError("paging never ended")


async def check_history(store: Store) -> None:
    updates, seen = scripted(40)
    assert (await store.history(NAME)).entries == []
    assert (await store.state_at(NAME, T0)).seq == 0
    await store.append({NAME: updates[:15]})
    await store.compact(NAME)
    await store.append({NAME: updates[15:30]})
    await store.compact(NAME)
    await store.append({NAME: updates[30:]})

    everything = await walk(store, 7)
    assert [e.seq for e in everything] == list(range(1, 41))
    assert [e.data for e in everything] == [u.data for u in updates]
    assert [e.author for e in everything] == [u.author for u in updates]
    assert [e.created_at for e in everything] == [u.created_at for u in updates]
    assert everything[0].size == len(updates[0].data)
    exact = await store.history(NAME, limit=40)
    assert len(exact.entries) == 40
    assert exact.next_after is None

    bo = await walk(store, 4, author="bo")
    assert [e.seq for e in bo] == [i + 1 for i in range(40) if AUTHORS[i % 3] == "bo"]
    window = await walk(
        store, 3, since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=19)
    )
    assert [e.seq for e in window] == list(range(11, 21))
    both = await walk(store, 100, author="ada", since=T0 + timedelta(seconds=30))
    assert [e.seq for e in both] == [31, 34, 37, 40]

    totals = {c.author: c for c in await store.contributions(NAME)}
    for author in AUTHORS:
        mine = [u for u in updates if u.author == author]
        assert totals[author].updates == len(mine)
        assert totals[author].bytes == sum(len(u.data) for u in mine)
        assert totals[author].first_at == mine[0].created_at
        assert totals[author].last_at == mine[-1].created_at
    late = await store.contributions(NAME, since=T0 + timedelta(seconds=38))
    assert sorted((c.author or "", c.updates) for c in late) == [("", 1), ("ada", 1)]

    # Before, inside and after each snapshot; between two updates; after the last.
    for k in (1, 9, 15, 16, 22, 30, 33, 40):
        past = await store.state_at(NAME, T0 + timedelta(seconds=k - 1, milliseconds=500))
        assert past.seq == k
        assert content(past.update) == seen[k - 1]
    later = await store.state_at(NAME, T0 + timedelta(days=1))
    assert later.seq == 40
    assert content(later.update) == seen[-1]
    assert (await store.state_at(NAME, T0 - timedelta(seconds=1))).seq == 0


async def check_bad_input(store: Store) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, not 0"):
        await store.history(NAME, limit=0)
    updates, _ = scripted(3)
    await store.append({NAME: updates})
    # A naive time is UTC; another zone is converted.
    naive = (T0 + timedelta(seconds=1)).replace(tzinfo=None)
    assert (await store.state_at(NAME, naive)).seq == 2
    paris = (T0 + timedelta(seconds=1)).astimezone(ZoneInfo("Europe/Paris"))
    assert (await store.state_at(NAME, paris)).seq == 2
    page = await store.history(NAME, limit=5000)
    assert len(page.entries) == 3
