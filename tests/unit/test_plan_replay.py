"""Replay random histories: diff as HDFS reports it, apply the plan, compare with the source.

The model keeps inode identity like the NameNode. Its diff report follows HDFS's
``getSnapshotDiffReport``: the earlier tree is walked with earlier names, a directory whose
children or attributes changed is MODIFY, a child that left it is RENAME (with the full later
path) when it still exists and DELETE otherwise, a child that arrived is CREATE unless it is
the arriving side of a reported rename, and created or deleted directories are not entered.
The plan is then applied to a path-based copy of the target, checking each step's
precondition the way HDFS would (rename never onto an existing path, and so on).
"""

from __future__ import annotations

import copy
import posixpath
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from tandem.hdfs.types import DiffEntry, DiffType
from tandem.plan import Copy, Delete, Move, SyncMetadata, plan_incremental

NAMES = ("a", "b", "c", "d")


@dataclass
class Inode:
    kind: str  # "file" | "dir"
    version: int = 0
    attrs: int = 0
    children: dict[str, int] = field(default_factory=dict)


class Namespace:
    """Inodes by id; 0 is the snapshot root."""

    def __init__(self) -> None:
        self.nodes: dict[int, Inode] = {0: Inode("dir")}
        self.next_id = 1

    def snapshot(self) -> Namespace:
        return copy.deepcopy(self)

    def add(self, parent: int, name: str, kind: str) -> int:
        node_id = self.next_id
        self.next_id += 1
        self.nodes[node_id] = Inode(kind)
        self.nodes[parent].children[name] = node_id
        return node_id

    def parents(self) -> dict[int, tuple[int, str]]:
        found = {}
        stack = [0]
        while stack:
            current = stack.pop()
            for name, child in self.nodes[current].children.items():
                found[child] = (current, name)
                stack.append(child)
        return found

    def reachable(self) -> set[int]:
        return {0, *self.parents()}

    def path(self, node_id: int) -> str:
        parents = self.parents()
        parts = []
        while node_id != 0:
            node_id, name = parents[node_id]
            parts.append(name)
        return "/".join(reversed(parts))

    def lookup(self, path: str) -> int:
        node_id = 0
        for part in path.split("/") if path else []:
            node_id = self.nodes[node_id].children[part]
        return node_id

    def tree(self, node_id: int) -> dict[str, Any]:
        node = self.nodes[node_id]
        if node.kind == "file":
            return {"kind": "file", "version": node.version, "attrs": node.attrs}
        return {
            "kind": "dir",
            "attrs": node.attrs,
            "children": {name: self.tree(child) for name, child in node.children.items()},
        }


class _DiffWalk:
    """HDFS's walk: the earlier tree, entered only through inodes that still exist."""

    def __init__(self, earlier: Namespace, later: Namespace) -> None:
        self.earlier, self.later = earlier, later
        self.in_later = later.reachable()
        self.visited: set[int] = set()
        stack = [0]
        while stack:
            current = stack.pop()
            self.visited.add(current)
            stack += [c for c in earlier.nodes[current].children.values() if c in self.in_later]
        self.earlier_parent = {child: parent for child, (parent, _) in earlier.parents().items()}
        self.entries: list[DiffEntry] = []

    @staticmethod
    def join(base: str, name: str) -> str:
        return f"{base}/{name}" if base else name

    def children_diff(self, node_id: int, path: str) -> None:
        before, after = self.earlier.nodes[node_id], self.later.nodes[node_id]
        old, new = set(before.children.items()), set(after.children.items())
        if old != new or before.attrs != after.attrs:
            self.entries.append(DiffEntry(DiffType.MODIFY, path))
        for name, child in sorted(old - new):
            if child in self.in_later:
                self.entries.append(DiffEntry(DiffType.RENAME, self.join(path, name), self.later.path(child)))
            else:
                self.entries.append(DiffEntry(DiffType.DELETE, self.join(path, name)))
        for name, child in sorted(new - old):
            # The arriving side of a rename whose leaving side is reported is not a create.
            if not (child in self.earlier.nodes and self.earlier_parent.get(child) in self.visited):
                self.entries.append(DiffEntry(DiffType.CREATE, self.join(path, name)))

    def visit(self, node_id: int, path: str) -> None:
        before, after = self.earlier.nodes[node_id], self.later.nodes[node_id]
        if before.kind == "file":
            if (before.version, before.attrs) != (after.version, after.attrs):
                self.entries.append(DiffEntry(DiffType.MODIFY, path))
            return
        self.children_diff(node_id, path)
        for name, child in sorted(before.children.items()):
            if child in self.in_later:
                self.visit(child, self.join(path, name))


def hdfs_diff(earlier: Namespace, later: Namespace) -> list[DiffEntry]:
    walk = _DiffWalk(earlier, later)
    walk.visit(0, "")
    return walk.entries


class History:
    """Random operations on a live namespace; ``protected`` paths are never moved or deleted."""

    def __init__(self, ns: Namespace, rng: random.Random, protected: set[str]) -> None:
        self.ns, self.rng, self.protected = ns, rng, protected

    def _dirs(self) -> list[int]:
        return sorted(i for i in self.ns.reachable() if self.ns.nodes[i].kind == "dir")

    def _movable(self) -> list[int]:
        return sorted(i for i in self.ns.reachable() if i != 0 and self.ns.path(i) not in self.protected)

    def _free_name(self, parent: int) -> str | None:
        free = [n for n in NAMES if n not in self.ns.nodes[parent].children]
        return self.rng.choice(free) if free else None

    def step(self) -> None:
        action = self.rng.choice(
            ["file", "file", "mkdir", "delete", "rename", "rename", "rename", "modify", "chmod"]
        )
        getattr(self, f"_{action}")()

    def _file(self) -> None:
        parent = self.rng.choice(self._dirs())
        name = self._free_name(parent)
        if name:
            self.ns.add(parent, name, "file")

    def _mkdir(self) -> None:
        parent = self.rng.choice(self._dirs())
        name = self._free_name(parent)
        if name:
            new = self.ns.add(parent, name, "dir")
            for inner in self.rng.sample(NAMES, self.rng.randint(0, 2)):
                self.ns.add(new, inner, "file")

    def _delete(self) -> None:
        candidates = self._movable()
        if candidates:
            victim = self.rng.choice(candidates)
            parent, name = self.ns.parents()[victim]
            del self.ns.nodes[parent].children[name]

    def _rename(self) -> None:
        candidates = self._movable()
        if not candidates:
            return
        moving = self.rng.choice(candidates)
        inside = {moving} | {
            c for c in self.ns.reachable() if self.ns.path(c).startswith(self.ns.path(moving) + "/")
        }
        targets = [d for d in self._dirs() if d not in inside]
        target = self.rng.choice(targets)
        name = self._free_name(target)
        if name is None:
            return
        parent, old_name = self.ns.parents()[moving]
        del self.ns.nodes[parent].children[old_name]
        self.ns.nodes[target].children[name] = moving

    def _modify(self) -> None:
        files = [i for i in self.ns.reachable() if self.ns.nodes[i].kind == "file"]
        if files:
            self.ns.nodes[self.rng.choice(sorted(files))].version += 1

    def _chmod(self) -> None:
        self.ns.nodes[self.rng.choice(sorted(self.ns.reachable()))].attrs += 1


class Target:
    """A path-based filesystem that fails like HDFS when a step's precondition does not hold."""

    def __init__(self, tree: dict[str, Any]) -> None:
        self.root = tree
        self.placed: set[str] = set()  # where renames put items, which need no copy

    def get(self, path: str) -> dict[str, Any] | None:
        node: dict[str, Any] | None = self.root
        for part in path.split("/") if path else []:
            if node is None or node["kind"] != "dir":
                return None
            node = node["children"].get(part)
        return node

    def _parent(self, path: str, make: bool = False) -> dict[str, Any]:
        parent_path = posixpath.dirname(path)
        parent = self.get(parent_path)
        if parent is None and make:
            self._parent(parent_path, make=True)["children"][posixpath.basename(parent_path)] = {
                "kind": "dir",
                "attrs": 0,
                "children": {},
            }
            parent = self.get(parent_path)
        assert parent is not None and parent["kind"] == "dir", f"no parent directory for {path}"
        return parent

    def put(self, path: str, node: dict[str, Any], make_parents: bool = False) -> None:
        self._parent(path, make_parents)["children"][posixpath.basename(path)] = node

    def remove(self, path: str) -> dict[str, Any]:
        assert path, "the dataset's top directory is never removed by a plan"
        node: dict[str, Any] | None = self._parent(path)["children"].pop(posixpath.basename(path), None)
        assert node is not None, f"{path} does not exist"
        return node

    def apply(self, step: Move | Delete | Copy | SyncMetadata, source: Target) -> None:
        if isinstance(step, Move):
            assert self.get(step.target) is None, f"rename onto existing {step.target}"
            self.put(step.target, self.remove(step.source), step.make_parents)
            self.placed.add(step.target)
        elif isinstance(step, Delete):
            self.remove(step.path)
        elif isinstance(step, SyncMetadata):
            self._sync_attrs(step.path, source)
        elif step.recursive:
            self._copy_tree(step, source)
        else:
            wanted = source.get(step.path)
            assert wanted is not None, f"{step.path} missing in the to snapshot"
            if wanted["kind"] == "dir":
                self._sync_attrs(step.path, source)
            else:
                assert (self.get(step.path) or {"kind": "file"})["kind"] == "file"
                self.put(step.path, copy.deepcopy(wanted))

    def _sync_attrs(self, path: str, source: Target) -> None:
        here, wanted = self.get(path), source.get(path)
        assert here is not None and wanted is not None and here["kind"] == wanted["kind"] == "dir", path
        here["attrs"] = wanted["attrs"]

    def _copy_tree(self, step: Copy, source: Target) -> None:
        wanted = source.get(step.path)
        assert wanted is not None, f"{step.path} missing in the to snapshot"
        kept = {}
        for excluded in step.exclude:
            assert excluded.startswith(step.path + "/") or not step.path
            node = self.get(excluded)
            assert node is not None, f"excluded {excluded} is not in place"
            kept[excluded] = node
        self._assert_nothing_placed_is_copied(step.path, wanted, set(step.exclude))
        self.put(step.path, copy.deepcopy(wanted))
        for excluded, node in kept.items():
            self.put(excluded, node)

    def _assert_nothing_placed_is_copied(self, path: str, node: dict[str, Any], exclude: set[str]) -> None:
        if path in exclude:
            return
        assert path not in self.placed, f"{path} was renamed into place, yet copied again"
        for name, child in node.get("children", {}).items():
            self._assert_nothing_placed_is_copied(f"{path}/{name}" if path else name, child, exclude)


def _history(seed: int, protected: set[str]) -> tuple[Namespace, Namespace]:
    rng = random.Random(seed)
    ns = Namespace()
    s = ns.add(0, "s", "dir")
    ns.add(s, "t", "dir")
    ns.add(0, "o", "dir")
    history = History(ns, rng, protected)
    for _ in range(rng.randint(3, 12)):
        history.step()
    earlier = ns.snapshot()
    for _ in range(rng.randint(1, 10)):
        history.step()
    return earlier, ns


@pytest.mark.parametrize("subtree", ["", "s", "s/t"])
def test_random_histories_replay_to_the_later_snapshot(subtree: str) -> None:
    for seed in range(400):
        earlier, later = _history(seed, {"s", "s/t"})
        entries = hdfs_diff(earlier, later)
        random.Random(seed).shuffle(entries)  # HDFS does not promise an order
        plan = plan_incremental(entries, subtree=subtree, tmp_dir=".tmp")
        assert plan.full_copy_reason is None
        target = Target(earlier.tree(earlier.lookup(subtree)))
        source = Target(later.tree(later.lookup(subtree)))
        for step in plan.steps():
            try:
                target.apply(step, source)
            except AssertionError as exc:
                raise AssertionError(f"seed {seed}, step {step}, entries {entries}: {exc}") from exc
        tmp = target.get(".tmp")
        assert tmp is None or tmp["children"] == {}, f"seed {seed}: items left in the tmp dir"
        if tmp is not None:
            target.remove(".tmp")
        assert target.root == source.root, f"seed {seed}: {entries}\n{plan}"


def _exists(ns: Namespace, path: str) -> bool:
    try:
        ns.lookup(path)
    except KeyError:
        return False
    return True


def _same_inode(earlier: Namespace, later: Namespace, path: str) -> bool:
    try:
        return earlier.lookup(path) == later.lookup(path)
    except KeyError:
        return False


@pytest.mark.parametrize("subtree", ["s", "s/t"])
def test_full_copy_exactly_when_the_dataset_directory_was_replaced(subtree: str) -> None:
    replaced = 0
    for seed in range(400):
        earlier, later = _history(seed, protected=set())
        entries = hdfs_diff(earlier, later)
        plan = plan_incremental(entries, subtree=subtree, tmp_dir=".tmp")
        if not (_exists(earlier, subtree) or _exists(later, subtree)):
            # Nothing to replay; a full copy (of nothing) is an acceptable, cautious answer too.
            assert plan.is_empty or plan.full_copy_reason, f"seed {seed}"
            continue
        if not _same_inode(earlier, later, subtree):
            replaced += 1
            assert plan.full_copy_reason, f"seed {seed}: {entries}"
            continue
        assert plan.full_copy_reason is None, f"seed {seed}: {plan.full_copy_reason}"
        target = Target(earlier.tree(earlier.lookup(subtree)))
        source = Target(later.tree(later.lookup(subtree)))
        for step in plan.steps():
            target.apply(step, source)
        if target.get(".tmp") is not None:
            target.remove(".tmp")
        assert target.root == source.root, f"seed {seed}: {entries}"
    assert replaced > 20  # the histories do exercise the edge


def test_replay_model_reports_renames_with_earlier_names() -> None:
    # Guards the model itself: a child created in a renamed directory is reported under the
    # directory's earlier name, as HDFS does.
    ns = Namespace()
    a = ns.add(0, "a", "dir")
    ns.add(a, "x", "file")
    earlier = ns.snapshot()
    ns.nodes[0].children["b"] = ns.nodes[0].children.pop("a")
    ns.add(a, "new", "file")
    assert set(hdfs_diff(earlier, ns)) == {
        DiffEntry(DiffType.MODIFY, ""),
        DiffEntry(DiffType.RENAME, "a", "b"),
        DiffEntry(DiffType.MODIFY, "a"),
        DiffEntry(DiffType.CREATE, "a/new"),
    }
