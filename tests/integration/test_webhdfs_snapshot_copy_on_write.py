"""The embedded NameNode's copy-on-write snapshots show exactly what the tree held when taken.

A snapshot saves nothing but its root when taken; each inode is saved by its first change after
it (tandem_dev.embedded.namespace.snapshot_ops). Every history here is fixed by its seed: random
changes over two snapshottable directories and one that is not (renames across all three, deletes,
overwrites, appends, metadata), snapshots taken and deleted on both roots, restarts. Each snapshot
is fingerprinted from the live tree the moment it is taken, and every snapshot still there must
show that fingerprint at every later step. Also: a namespace whose snapshots were written as full
copies (before copy-on-write) keeps reading them, and takes copy-on-write ones afterwards.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
from pathlib import Path

import pytest

from tandem_dev.embedded.namespace import Namespace, Parts
from tests.integration.namespace_support import forget_copy_on_write

USER = "hdfs"
ROOTS: tuple[Parts, ...] = (("r1",), ("r2",))
PLAIN: Parts = ("o",)


def fingerprint(ns: Namespace, top: Parts) -> dict[Parts, tuple[object, ...]]:
    """Every path under ``top`` with what a client sees of it: status, listing size, bytes."""
    out: dict[Parts, tuple[object, ...]] = {}

    def visit(parts: Parts, rel: Parts) -> None:
        info = ns.status(parts)
        seen: tuple[object, ...] = (
            info.is_dir,
            info.length,
            info.owner,
            info.group,
            info.perm,
            info.mtime,
            info.file_id,
            info.children,
            info.replication,
        )
        if not info.is_dir:
            handle = ns.open_read(parts)
            try:
                data = os.pread(handle.fd, handle.count, handle.offset) if handle.fd >= 0 else b""
            finally:
                handle.close()
            out[rel] = (*seen, data)
            return
        entries, remaining = ns.list_status(parts)
        assert remaining == 0
        out[rel] = (*seen, tuple(e.name for e in entries))
        for entry in entries:
            visit((*parts, entry.name), (*rel, entry.name))

    visit(top, ())
    summary = ns.content_summary(top)
    out[("<summary>",)] = (summary.directories, summary.files, summary.length)
    return out


def _paths(ns: Namespace) -> tuple[list[Parts], list[Parts]]:
    """Every directory (the tops included) and every file of the current tree."""
    dirs: list[Parts] = [*ROOTS, PLAIN]
    files: list[Parts] = []
    stack = list(dirs)
    while stack:
        parts = stack.pop()
        for entry in ns.list_status(parts)[0]:
            child = (*parts, entry.name)
            (dirs if entry.is_dir else files).append(child)
            if entry.is_dir:
                stack.append(child)
    return sorted(dirs), sorted(files)


def _write(ns: Namespace, path: Parts, data: bytes, *, append: bool = False) -> None:
    pending = ns.begin_append(path, USER) if append else ns.begin_create(path, USER, overwrite=True)
    pending.write(data)
    ns.commit_write(pending)


def _change(ns: Namespace, rnd: random.Random, step: int) -> None:
    """One random change anywhere; refusals (a name taken, a path gone) are part of the history."""
    dirs, files = _paths(ns)
    inner = [d for d in dirs if d not in (*ROOTS, PLAIN)]
    where = rnd.choice(dirs)
    file = rnd.choice(files) if files else None
    folder = rnd.choice(inner) if inner else None
    changes = [
        lambda: _write(ns, (*where, f"f{rnd.randrange(6)}"), f"{step}:".encode() * rnd.randrange(1, 4)),
        lambda: ns.mkdirs((*where, f"d{rnd.randrange(4)}"), USER),
        lambda: file and _write(ns, file, b"+", append=True),
        lambda: file and ns.rename(file, (*where, f"m{rnd.randrange(6)}")),
        lambda: folder and ns.rename(folder, (*where, f"dm{rnd.randrange(4)}")),
        lambda: file and ns.delete(file),
        lambda: folder and ns.delete(folder, recursive=True),
        lambda: file and ns.set_permission(rnd.choice([file, where]), rnd.choice([0o644, 0o600, 0o750])),
    ]
    try:
        rnd.choices(changes, weights=[25, 10, 10, 15, 10, 10, 5, 15])[0]()
    except Exception:  # the namespace refused: the history goes on
        return


@pytest.mark.parametrize("seed", range(8))
def test_every_snapshot_keeps_showing_the_tree_it_was_taken_of(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    home = tmp_path / "ns"
    ns = Namespace(home, superuser=USER)
    expected: dict[tuple[Parts, str], dict[Parts, tuple[object, ...]]] = {}
    try:
        for top in (*ROOTS, PLAIN):
            ns.mkdirs(top, USER)
        for root in ROOTS:
            ns.allow_snapshot(root)
        for step in range(160):
            _change(ns, rnd, step)
            if rnd.random() < 0.12:
                root = rnd.choice(ROOTS)
                name = f"s{step}"
                ns.create_snapshot(root, name)
                expected[(root, name)] = fingerprint(ns, root)
            if len(expected) > 2 and rnd.random() < 0.06:
                root, name = rnd.choice(sorted(expected))
                ns.delete_snapshot(root, name)
                del expected[(root, name)]
            if rnd.random() < 0.03:
                ns.close()
                ns = Namespace(home, superuser=USER)
            if rnd.random() < 0.25 or step == 159:
                for (root, name), seen in sorted(expected.items()):
                    shown = fingerprint(ns, (*root, ".snapshot", name))
                    assert shown == seen, f"seed {seed} step {step}: {root} {name}"
        assert len(expected) >= 2
    finally:
        ns.close()


def test_full_copy_snapshots_written_before_copy_on_write_are_still_read(tmp_path: Path) -> None:
    home = tmp_path / "ns"
    ns = Namespace(home, superuser=USER)
    try:
        for path in (("d", "a", "x"), ("d", "a", "y"), ("d", "b"), ("outside",)):
            pending = ns.begin_create(path, USER)
            pending.write(b"/".join(p.encode() for p in path))
            ns.commit_write(pending)
        ns.allow_snapshot(("d",))
        ns.create_snapshot(("d",), "old")
        old = fingerprint(ns, ("d",))
    finally:
        ns.close()
    with contextlib.closing(sqlite3.connect(home / "namespace.db")) as db:
        # rewrite "old" as the full copy an earlier version made, and forget copy-on-write
        (sid,) = db.execute("SELECT sid FROM snapshots WHERE name='old'").fetchone()
        db.execute(
            """INSERT OR IGNORE INTO inodes SELECT ?, id, parent, name, dir, owner, grp, perm, acl, mtime,
                 atime, repl, bsize, length, blob, nsq, ssq, xattrs, born FROM inodes WHERE sid=0 AND id IN (
                 WITH RECURSIVE sub(id) AS (SELECT id FROM inodes WHERE sid=0 AND parent=16385 AND name='d'
                   UNION ALL SELECT i.id FROM inodes i JOIN sub ON i.sid=0 AND i.parent=sub.id)
                 SELECT id FROM sub)""",
            (sid,),
        )
        forget_copy_on_write(db)
        db.commit()
    ns = Namespace(home, superuser=USER)
    try:
        ns.rename(("outside",), ("d", "a", "came"))  # into the snapshotted tree after "old"
        ns.delete(("d", "a", "x"))
        ns.create_snapshot(("d",), "new")
        new = fingerprint(ns, ("d",))
        pending = ns.begin_append(("d", "a", "y"), USER)
        pending.write(b"!")
        ns.commit_write(pending)
        ns.rename(("d", "a"), ("d", "b2"))
        assert fingerprint(ns, ("d", ".snapshot", "old")) == old
        assert fingerprint(ns, ("d", ".snapshot", "new")) == new
        diff = ns.snapshot_diff(("d",), "old", "new")
        assert sorted((e.type, e.source) for e in diff.entries) == sorted(
            [("MODIFY", "a"), ("CREATE", "a/came"), ("DELETE", "a/x")]
        )
        ns.delete_snapshot(("d",), "old")
        assert fingerprint(ns, ("d", ".snapshot", "new")) == new
    finally:
        ns.close()
