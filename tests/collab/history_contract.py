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


def lesson(n: int) -> list[StoredUpdate]:
    """``n`` updates of three authors writing at once, each large enough that a store
    which packs its log bundles them, at irregular microsecond times."""
    docs: list[Doc[Any]] = [Doc() for _ in AUTHORS]
    out: list[StoredUpdate] = []
    at = T0
    for i in range(n):
        who = (i * 7 + i // 5) % 3
        doc = docs[who]
        made: list[bytes] = []
        sub = doc.observe(lambda e, made=made: made.append(e.update))
        doc.get(f"a{who}", type=Array).append(f"{i:04d}" * (20 + i % 50))
        doc.unobserve(sub)
        at += timedelta(microseconds=1 + (i * 104_729) % 400_000)
        out.append(StoredUpdate(made[0], AUTHORS[who], at))
    return out


async def check_packed_log(store: Store) -> None:
    """Saves of interleaved authors, some compacted: every entry comes back as sent, in
    order, with its own seq, author and time; filters, contributions and past states
    answer per entry, not per stored row."""
    updates = lesson(240)
    for start, end in ((0, 90), (90, 91), (91, 200), (200, 240)):
        await store.append({NAME: updates[start:end]})
        if end in (91, 200):
            await store.compact(NAME)
    everything = await walk(store, 13)
    assert [(e.seq, e.author, e.created_at, e.data) for e in everything] == [
        (i + 1, u.author, u.created_at, u.data) for i, u in enumerate(updates)
    ]
    bo = await walk(store, 9, author="bo")
    assert [e.seq for e in bo] == [i + 1 for i, u in enumerate(updates) if u.author == "bo"]
    since, until = updates[40].created_at, updates[150].created_at
    window = await walk(store, 11, since=since, until=until)
    assert [e.seq for e in window] == list(range(41, 152))
    totals = {c.author: c for c in await store.contributions(NAME, since=since)}
    for author in AUTHORS:
        mine = [u for u in updates[40:] if u.author == author]
        assert totals[author].updates == len(mine)
        assert totals[author].bytes == sum(len(u.data) for u in mine)
        assert (totals[author].first_at, totals[author].last_at) == (
            mine[0].created_at,
            mine[-1].created_at,
        )
    for k in (1, 2, 45, 90, 91, 92, 150, 199, 200, 201, 239, 240):
        at = updates[k - 1].created_at
        moments = [at] if k == len(updates) else [at, at + (updates[k].created_at - at) // 2]
        expected: Doc[Any] = Doc()
        for u in updates[:k]:
            expected.apply_update(u.data)
        for moment in moments:
            past = await store.state_at(NAME, moment)
            assert past.seq == k
            assert _arrays(past.update) == _arrays(expected.get_update())
    loaded = await store.load(NAME)
    assert list(loaded.tail) == [u.data for u in updates[200:]]  # in the order written
    assert list(loaded.tail_authors) == [u.author for u in updates[200:]]
    assert _arrays(loaded.to_doc().get_update()) == _arrays(replay_all(updates))


def _arrays(update: bytes) -> dict[str, list[Any]]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return {f"a{i}": list(doc.get(f"a{i}", type=Array).to_py()) for i in range(len(AUTHORS))}


def replay_all(updates: list[StoredUpdate]) -> bytes:
    doc: Doc[Any] = Doc()
    for u in updates:
        doc.apply_update(u.data)
    return doc.get_update()
