"""What the next backup of a business would do, computed without changing anything.

``tandem plan BUSINESS`` and a run with conf ``{"dry_run": true}`` show it: the direction and
whether preflight would let the run start, the snapshot roots (and which would be made
snapshottable), each dataset's copy (full or incremental and why, files and bytes to copy from
the snapshot diff against the current state, renames and deletes replayed, what a changed target
would send to the quarantine), the tables and partitions the target's metastore would gain or
lose, the user-data changes, and the points retention would expire once this one is published.

Every call here reads: LISTSTATUS, GETFILESTATUS, GETSNAPSHOTDIFF from the base point to the
current state, metastore reads. The figures describe the clusters as they are now; the run
copies from its own snapshot, taken when it starts, so it copies what changed until then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tandem import catalog, plan
from tandem.backup.run import Run, base_snapshot, decide_direction, preflight
from tandem.backup.snapshot import plan_roots, resolve
from tandem.backup.sync import Syncer
from tandem.capture import capture, table_changes
from tandem.components import COMPONENTS, ResolvedDataset
from tandem.errors import PreflightError
from tandem.hdfs.client import Hdfs
from tandem.policy.types import format_size
from tandem.verify import join as _join
from tandem.verify import within as _within

if TYPE_CHECKING:
    from tandem.runtime import Clusters


@dataclass
class CopyPreview:
    """One (root, subtree) of a dataset: how the run would copy it and how much."""

    component: str
    dataset: str
    root: str
    subtree: str
    mode: str
    reason: str
    files: int = 0
    bytes: int = 0
    renames: int = 0
    deletes: int = 0
    target_changed: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Preview:
    """The next run of a business, as it would go now."""

    business: str
    dag_id: str
    instant: datetime
    source: str | None = None
    target: str | None = None
    direction: str = ""
    blocked: str | None = None  # why preflight would stop the run (None: it would start)
    base_point: str | None = None
    roots: list[dict[str, Any]] = field(default_factory=list)
    copies: list[CopyPreview] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    user_data: dict[str, int] | None = None
    expire: list[dict[str, str]] = field(default_factory=list)
    kept: int = 0

    @property
    def files_to_copy(self) -> int:
        return sum(c.files for c in self.copies)

    @property
    def bytes_to_copy(self) -> int:
        return sum(c.bytes for c in self.copies)

    def to_json(self) -> dict[str, Any]:
        return {
            "business": self.business,
            "dag_id": self.dag_id,
            "instant": catalog.iso(self.instant),
            "source": self.source,
            "target": self.target,
            "direction": self.direction,
            "blocked": self.blocked,
            "base_point": self.base_point,
            "mode": self.mode,
            "roots": self.roots,
            "copies": [c.to_json() for c in self.copies],
            "files_to_copy": self.files_to_copy,
            "bytes_to_copy": self.bytes_to_copy,
            "tables": self.tables,
            "user_data": self.user_data,
            "retention": {"expire": self.expire, "kept": self.kept},
            "changes_nothing": True,
        }

    @property
    def mode(self) -> str | None:
        if not self.copies:
            return None
        return "incremental" if all(c.mode == "incremental" for c in self.copies) else "full"

    def lines(self) -> list[str]:
        """The preview for people, one fact per line."""
        head = f"next backup of {self.business} ({self.dag_id}), as of {catalog.iso(self.instant)}"
        out = [head]
        if self.source is None:
            out.append(f"  would not start: {self.blocked}")
            return out
        out.append(f"  direction: {self.source} -> {self.target} ({self.direction})")
        out.append(f"  preflight: {'would stop the run: ' + self.blocked if self.blocked else 'passes'}")
        base = f"incremental from {self.base_point}" if self.base_point else "no earlier point"
        out.append(f"  base: {base}")
        out.append(f"  snapshot roots ({len(self.roots)}):")
        for root in self.roots:
            made = "made snapshottable first" if root["make_snapshottable"] else "snapshottable already"
            out.append(f"    {root['root']} ({made}): {', '.join(root['datasets'])}")
        size = format_size(self.bytes_to_copy)
        out.append(f"  copy: {self.files_to_copy} files, {size} ({self.mode or 'nothing'})")
        for c in self.copies:
            where = _join(c.root, c.subtree)
            extra = f", {c.renames} renames, {c.deletes} deletes replayed" if c.mode == "incremental" else ""
            if c.target_changed:
                extra += ", what the target holds beyond the base point moves to the quarantine first"
            out.append(
                f"    {c.component} {c.dataset} at {where}: {c.mode} ({c.reason}): "
                f"{c.files} files, {format_size(c.bytes)}{extra}"
            )
        changed = [t for t in self.tables if t["action"] or t["partitions_added"] or t["partitions_dropped"]]
        out.append(f"  metastore of {self.target}: {len(changed)} of {len(self.tables)} table(s) change")
        for t in changed:
            parts = [t["action"] or "keep definition"]
            for key, verb in (
                ("partitions_added", "add"),
                ("partitions_dropped", "drop"),
                ("partitions_altered", "move"),
            ):
                if t[key]:
                    parts.append(f"{verb} {len(t[key])} partition(s) ({_some(t[key])})")
            out.append(f"    {t['table']}: {'; '.join(parts)}")
        if self.user_data is None:
            out.append("  user data: not synced (user_data: false)")
        else:
            counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(self.user_data.items()))
            out.append(f"  user data: {counts} (Hive roles and grants follow the point's capture)")
        if self.expire:
            out.append(f"  retention: {len(self.expire)} point(s) would expire, {self.kept} kept")
            out += [f"    {e['point']}: {e['reason']}" for e in self.expire]
        else:
            out.append(f"  retention: nothing expires, {self.kept} point(s) kept")
        out.append("  nothing was changed")
        return out


def preview(run: Run, clusters: Clusters) -> Preview:
    """What ``run`` would do, read from the clusters as they are now. Changes nothing."""
    out = Preview(run.business, run.policy.dag_id, run.instant)
    try:
        direction = preflight(run, clusters).direction
    except PreflightError as exc:
        out.blocked = str(exc)
        pair = run.topology.pairs[run.policy.pair]
        try:
            direction = decide_direction(clusters.observe(pair.primary), clusters.observe(pair.standby))
        except PreflightError:
            return out
    out.source, out.target, out.direction = direction.source, direction.target, direction.reason
    src, dst = clusters.hdfs(direction.source), clusters.hdfs(direction.target)
    resolved = [r for component in COMPONENTS for r in resolve(run, clusters, direction.source, component)]
    tables = [(ds.component, ds.name) for ds in resolved if ds.component != "hdfs"]
    captured = (
        capture(clusters.metastore(direction.source), tables, user_data=run.policy.user_data)
        if tables
        else None
    )
    roots = plan_roots(src, resolved, captured)
    out.roots = [
        {
            "root": path,
            "make_snapshottable": decided.make_snapshottable,
            "datasets": list(decided.datasets),
            "reason": decided.reason,
        }
        for path, decided in sorted(roots.items())
    ]
    base, out.base_point = base_snapshot(run, dst)
    syncer = Syncer(run, src, dst, direction)
    by_name = {ds.name: ds for ds in resolved}
    for path, decided in sorted(roots.items()):
        for member in decided.members:
            ds = by_name[member.dataset]
            out.copies.append(_copy_preview(syncer, ds, path, member.subtree, base))
    if captured is not None:
        nameservice = run.topology.clusters[direction.target].nameservice
        changes = table_changes(captured, clusters.metastore(direction.target), nameservice)
        out.tables = [c.to_json() for c in changes]
    if run.policy.user_data:
        out.user_data = _user_data(run, src, dst, roots)
    _retention(run, dst, out)
    return out


def _copy_preview(
    syncer: Syncer, ds: ResolvedDataset, root: str, subtree: str, base: str | None
) -> CopyPreview:
    mode, reason, changed = syncer.decide(root, subtree, base)
    found = CopyPreview(ds.component, ds.name, root, subtree, mode, reason, target_changed=changed)
    src, dst = syncer.src, syncer.dst
    live = _join(root, subtree)
    if src.status(live) is None:
        found.reason += f"; {live} does not exist on the source yet"
        return found
    if mode == "incremental" and base is not None:
        ops = plan.plan_incremental(src.snapshot_diff(root, base, "").entries, subtree, syncer.tmp_dir())
        if ops.full_copy_reason is None:
            found.renames, found.deletes = len(ops.renames), len(ops.deletes)
            for step in ops.copies:
                _count(src, live, step.path, step.recursive, step.exclude, found)
            return found
        found.mode, found.reason = "full", ops.full_copy_reason
    # a full copy copies what differs from the target by length or modification time
    want = {e.relpath: e.status for e in src.walk(live) if not e.status.is_dir}
    have = {e.relpath: e.status for e in dst.walk(live)} if dst.status(live) else {}
    for rel, status in want.items():
        there = have.get(rel)
        if (
            there is None
            or there.is_dir
            or (there.length, there.modification_time)
            != (
                status.length,
                status.modification_time,
            )
        ):
            found.files += 1
            found.bytes += status.length
    return found


def _count(
    src: Hdfs, top: str, rel: str, recursive: bool, exclude: tuple[str, ...], found: CopyPreview
) -> None:
    status = src.status(_join(top, rel))
    if status is None:
        return
    if not status.is_dir:
        found.files += 1
        found.bytes += status.length
        return
    if not recursive:
        return
    for entry in src.walk(_join(top, rel)):
        child = _join(rel, entry.relpath)
        if entry.status.is_dir or any(_within(child, e) for e in exclude):
            continue
        found.files += 1
        found.bytes += entry.status.length


def _user_data(run: Run, src: Hdfs, dst: Hdfs, roots: dict[str, plan.SnapshotRoot]) -> dict[str, int]:
    from tandem import userdata

    counts: dict[str, int] = {}
    for root, decided in roots.items():
        for member in decided.members:
            top = _join(root, member.subtree)
            for key, value in userdata.sync_tree_metadata(src, top, dst, top, dry_run=True).items():
                counts[key] = counts.get(key, 0) + value
    counts.update(userdata.sync_quotas(src, dst, run.policy.tenant_dirs, dry_run=True))
    return counts


def _retention(run: Run, dst: Hdfs, out: Preview) -> None:
    points = catalog.list_points(dst, run.business)
    retention = run.policy.retention
    decision = plan.choose_expired(
        [p.instant for p in points] + [run.instant], retention.keep_last, retention.max_age, run.instant
    )
    out.expire = [{"point": catalog.iso(p), "reason": decision.reasons[p]} for p in sorted(decision.expire)]
    out.kept = len(decision.keep)


def _some(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def run_plan(args: Any) -> int:
    """``tandem plan BUSINESS [--full] [--json]``: the next backup's preview."""
    import json

    from tandem.points import load_business
    from tandem.runtime import cluster_clients_for_cli

    clusters = cluster_clients_for_cli(args.home)
    policy, topology = load_business(args.business)
    run = Run(policy, topology, datetime.now(UTC).replace(microsecond=0), bool(args.full))
    found = preview(run, clusters)
    if args.json:
        print(json.dumps(found.to_json(), indent=2))
    else:
        print("\n".join(found.lines()))
    return 0 if found.blocked is None else 1
