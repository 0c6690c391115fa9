"""Policy cost per student write on a classroom document with a long chat.

Compares, in one run, the write judge of main before issue 6 (commit 1d0f836: a scratch
copy of the whole document per write, observers on it) with the current one (the update
is parsed and judged against the room's index; nothing is copied). Prints microseconds
per judged write at several chat lengths; the new cost must stay flat.

    python bench/policy.py [--messages 100 1000 10000] [--writes 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import types
from typing import Any

from pycrdt import Array, Doc, Map

from collab.index import DocumentIndex
from collab.ports import Peer
from collab.updates import parse
from server.classroom import judge_class

OLD_COMMIT = "1d0f836"


def old_judge() -> Any:
    """``student_change_allowed`` as it was on main before issue 6."""
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:server/classroom.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    source = source.replace("from .auth import Role", "from server.auth import Role")
    source = source.replace("Peer, Revert, Verdict", "Peer, Verdict")  # only the judge runs
    module = types.ModuleType("old_classroom")
    exec(compile(source, "old_classroom.py", "exec"), module.__dict__)
    return module.student_change_allowed


def classroom(messages: int) -> tuple[Doc[Any], DocumentIndex]:
    doc: Doc[Any] = Doc()
    chat = doc.get("chat", type=Array)
    doc.get("state", type=Map)["boardLocked"] = True
    writers: list[Doc[Any]] = [Doc() for _ in range(30)]
    for i in range(messages):
        w = writers[i % 30]
        w.apply_update(doc.get_update(w.get_state()))
        w.get("chat", type=Array).append(
            {"id": f"m{i}", "userId": f"s{i % 30}", "name": f"S{i % 30}", "text": "hello " * 5}
        )
        doc.apply_update(w.get_update(doc.get_state()))
    del chat
    index = DocumentIndex(places=True)
    index.integrate(parse(doc.get_update()), None)
    return doc, index


def hand_raises(doc: Doc[Any], n: int) -> list[bytes]:
    student: Doc[Any] = Doc()
    student.apply_update(doc.get_update())
    updates: list[bytes] = []
    student.observe(lambda e: updates.append(e.update))
    for i in range(n):
        student.get("hands", type=Map)["s1"] = float(i)
    return updates


def measure(messages: int, writes: int, old: Any) -> tuple[float, float, int]:
    doc, index = classroom(messages)
    updates = hand_raises(doc, writes)
    peer = Peer("s1", "S1", "student")
    new_times = []
    for u in updates:
        started = time.perf_counter()
        judge_class(parse(u), index, peer)
        new_times.append(time.perf_counter() - started)
        doc.apply_update(u)
        index.integrate(parse(u), "s1")
    doc2, _ = classroom(messages)
    old_times = []
    for u in updates[: max(5, writes // 10)]:
        started = time.perf_counter()
        old(doc2, u, "s1")
        old_times.append(time.perf_counter() - started)
        doc2.apply_update(u)
    return (
        statistics.median(new_times) * 1e6,
        statistics.median(old_times) * 1e6,
        len(doc.get_update()),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args()
    old = old_judge()
    print(
        f"{'chat messages':>14} {'doc bytes':>10} {'before (us)':>12} {'now (us)':>9} {'ratio':>7}"
    )
    for n in args.messages:
        new_us, old_us, size = measure(n, args.writes, old)
        print(f"{n:>14} {size:>10} {old_us:>12.0f} {new_us:>9.1f} {old_us / new_us:>6.0f}x")


if __name__ == "__main__":
    main()
