"""Landing a business on a restore point: every dataset back to instant T on one cluster.

HDFS trees come back from the cluster's own ``.snapshot/tandem-<business>-<T>`` by reverse
diff: GETSNAPSHOTDIFF from the point to the live tree names the paths that changed, and only
those are touched. What the live tree holds beyond the point is moved to
``/.tandem/quarantine/<business>/restore-<when>/`` (never deleted); what it lost is copied back
from the snapshot, verified by checksum, with its owner, permission, ACL and times. Tables and
partitions are made to match the point's metadata capture, then the business is verified
(``verify --live``).

Guarantees: reads the point before writing anything; idempotent (a restore interrupted
anywhere, even by SIGKILL, is finished by running it again: each action re-reads both sides
first); never deletes data (quarantine is a RENAME); ``dry_run`` changes nothing and lists
what would change.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tandem import plan, verify
from tandem.capture import Capture, apply_grants, apply_tables
from tandem.copy.webhdfs import FileCopy, WebHdfsCopier, apply_metadata, apply_xattrs, user_xattrs
from tandem.errors import RestoreError
from tandem.hdfs.client import Hdfs
from tandem.hdfs.types import DiffEntry, DiffType, FileStatus
from tandem.metastore import Metastore
from tandem.points import PointOnCluster

if TYPE_CHECKING:
    from tandem.catalog import Manifest
    from tandem.runtime import Clusters

log = logging.getLogger(__name__)

QUARANTINE_ROOT = "/.tandem/quarantine"


def changed_paths(entries: Sequence[DiffEntry], subtree: str) -> list[str]:
    """Root-relative paths a reverse diff says differ inside ``subtree``, parents first. Pure.

    A rename contributes both names: the old one is brought back, the new one quarantined.
    """
    found: set[str] = set()
    for entry in entries:
        for path in (entry.source, entry.target):
            if path is not None and path != "" and verify.within(path, subtree):
                found.add(path)
    ordered = sorted(found, key=lambda p: (p.count("/"), p))
    return ordered


@dataclass(frozen=True)
class Action:
    """One change a restore makes: ``quarantine`` (live path moved to ``parked``), ``restore``
    (copied back from the snapshot), ``metadata`` (owner/permission/ACL)."""

    kind: str
    path: str
    detail: str = ""
    parked: str | None = None

    def __str__(self) -> str:
        where = f" -> {self.parked}" if self.parked else ""
        return f"{self.kind:<10} {self.path}{where}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Outcome:
    business: str
    cluster: str
    point: str
    dry_run: bool
    quarantine: str
    actions: list[Action] = field(default_factory=list)
    metadata: dict[str, int] = field(default_factory=dict)
    metadata_differences: list[str] = field(default_factory=list)
    check: verify.Report | None = None
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for action in self.actions:
            out[action.kind] = out.get(action.kind, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "business": self.business,
            "cluster": self.cluster,
            "point": self.point,
            "dry_run": self.dry_run,
            "quarantine": self.quarantine,
            "hdfs": self.counts(),
            "actions": [
                {"kind": a.kind, "path": a.path, "detail": a.detail, "parked": a.parked} for a in self.actions
            ],
            "metadata": self.metadata,
            "metadata_differences": self.metadata_differences,
            "verified": None if self.check is None else self.check.to_json(),
            "seconds": round(self.seconds, 3),
        }


class _Lander:
    """Reconciles one cluster's live trees with its snapshot of the point."""

    def __init__(self, hdfs: Hdfs, snapshot: str, quarantine: str, dry_run: bool) -> None:
        self.hdfs = hdfs
        self.snapshot = snapshot
        self.quarantine_dir = quarantine
        self.dry_run = dry_run
        self.copier = WebHdfsCopier(hdfs, hdfs, parallelism=4)
        self.actions: list[Action] = []

    def subtree(self, root: str, subtree: str) -> None:
        entries = self.hdfs.snapshot_diff(root, self.snapshot, "").entries
        # a name created, deleted or renamed is another inode on one side: nothing below it is
        # in the diff, so a directory there on both sides is compared whole
        replaced = {
            path
            for e in entries
            if e.type is not DiffType.MODIFY
            for path in (e.source, e.target)
            if path is not None
        }
        moved: list[str] = []
        for rel in changed_paths(entries, subtree):
            if any(verify.within(rel, m) for m in moved):
                continue  # under a path already moved or restored whole
            if self._reconcile(root, rel, whole=rel in replaced):
                moved.append(rel)

    def _reconcile(self, root: str, rel: str, whole: bool = False) -> bool:
        """Make ``root/rel`` what the snapshot holds; True when it was handled as a whole tree.
        ``whole``: a directory on both sides is reconciled child by child, all the way down."""
        live_path, then_path = verify.join(root, rel), verify.snap_path(root, self.snapshot, rel)
        live, then = self.hdfs.status(live_path), self.hdfs.status(then_path)
        if live is None and then is None:
            return False
        if then is None:
            assert live is not None
            what = "not in the point"
            if live.is_dir:
                files = int(self.hdfs.content_summary(live_path).get("fileCount", 0))
                what = f"directory with {files} file(s) not in the point"
            self._quarantine(root, rel, what)
            return True
        if live is None:
            self._bring_back(root, rel, then, "missing")
            return True
        if live.is_dir != then.is_dir:
            self._quarantine(root, rel, "replaced by the point's " + ("directory" if then.is_dir else "file"))
            self._bring_back(root, rel, then, "kind changed")
            return True
        if not then.is_dir and not self._same_file(live_path, live, then_path, then):
            self._quarantine(root, rel, "content differs from the point")
            self._bring_back(root, rel, then, "content differs")
            return True
        self._metadata(live_path, then_path, live, then)
        if whole and then.is_dir:
            self._children(root, rel, live_path, then_path)
            return True
        return False

    def _children(self, root: str, rel: str, live_path: str, then_path: str) -> None:
        names = {s.path_suffix for s in self.hdfs.list(live_path)} | {
            s.path_suffix for s in self.hdfs.list(then_path)
        }
        for name in sorted(names):
            self._reconcile(root, verify.join(rel, name) if rel else name, whole=True)

    def _same_file(self, live_path: str, live: FileStatus, then_path: str, then: FileStatus) -> bool:
        if live.length != then.length:
            return False
        a, b = self.hdfs.checksum(live_path), self.hdfs.checksum(then_path)
        return (a.algorithm, a.bytes) == (b.algorithm, b.bytes)

    def _quarantine(self, root: str, rel: str, why: str) -> None:
        live_path = verify.join(root, rel)
        parked = posixpath.join(self.quarantine_dir, live_path.lstrip("/"))
        self.actions.append(Action("quarantine", live_path, why, parked if self.quarantine_dir else None))
        if self.dry_run:
            return
        self.hdfs.mkdirs(posixpath.dirname(parked))
        self.hdfs.rename(live_path, parked)
        log.info("restore: quarantined %s -> %s (%s)", live_path, parked, why)

    def _bring_back(self, root: str, rel: str, then: FileStatus, why: str) -> None:
        live_path, then_path = verify.join(root, rel), verify.snap_path(root, self.snapshot, rel)
        if not then.is_dir:
            self.actions.append(Action("restore", live_path, why))
            if not self.dry_run:
                self.copier.copy_files([FileCopy(then_path, live_path, then)], label=f"restore {live_path}")
            return
        files = list(self.hdfs.walk(then_path))
        self.actions.append(
            Action(
                "restore",
                live_path,
                f"{why}; directory with {sum(not e.status.is_dir for e in files)} file(s)",
            )
        )
        if self.dry_run:
            return
        self.hdfs.mkdirs(live_path)
        copies = []
        for entry in files:
            target = verify.join(live_path, entry.relpath)
            if entry.status.is_dir:
                self.hdfs.mkdirs(target)
            else:
                copies.append(FileCopy(verify.join(then_path, entry.relpath), target, entry.status))
        self.copier.copy_files(copies, label=f"restore {live_path}")
        dirs = sorted(
            [e.relpath for e in files if e.status.is_dir] + [""], key=lambda r: -r.count("/") - bool(r)
        )
        for relpath in dirs:
            source = verify.join(then_path, relpath)
            status = then if not relpath else self.hdfs.status(source)
            if status is not None:
                acl = self.hdfs.acl_status(source).entries if status.acl_bit else None
                target = verify.join(live_path, relpath)
                apply_xattrs(self.hdfs, target, user_xattrs(self.hdfs, source), None)
                apply_metadata(self.hdfs, target, status, acl)

    def _metadata(self, live_path: str, then_path: str, live: FileStatus, then: FileStatus) -> None:
        live_acl = self.hdfs.acl_status(live_path).entries if live.acl_bit else ()
        then_acl = self.hdfs.acl_status(then_path).entries if then.acl_bit else ()
        same = (live.owner, live.group, live.permission, sorted(live_acl)) == (
            then.owner,
            then.group,
            then.permission,
            sorted(then_acl),
        )
        # a path the diff names (its attributes changed count): two reads, not the business's
        live_xattrs, then_xattrs = user_xattrs(self.hdfs, live_path), user_xattrs(self.hdfs, then_path)
        if live_xattrs != then_xattrs:
            self.actions.append(Action("metadata", live_path, "extended attributes differ"))
            if not self.dry_run:
                apply_xattrs(self.hdfs, live_path, then_xattrs, live_xattrs)
        if same and live.modification_time == then.modification_time:
            return
        if not same:
            self.actions.append(Action("metadata", live_path, "owner, permission or ACL differ"))
        if not self.dry_run:
            apply_metadata(self.hdfs, live_path, then, then_acl if then.acl_bit else None, current=live)


def differences(hdfs: Hdfs, root: str, subtree: str, snapshot: str) -> list[Action]:
    """What a restore of ``root``/``subtree`` to its snapshot ``snapshot`` would change (time-only
    changes of directories excepted). Read-only: empty when the live tree is at the snapshot by
    content, even where inodes differ (a file put back by a restore)."""
    lander = _Lander(hdfs, snapshot, "", dry_run=True)
    lander.subtree(root, subtree)
    return lander.actions


def plan_landing(hdfs: Hdfs, manifest: Manifest) -> list[Action]:
    """:func:`differences` for every protected tree of the point."""
    return [
        a for root, sub in manifest.subtrees() for a in differences(hdfs, root, sub, manifest.snapshot_name)
    ]


def restore(
    landing: PointOnCluster,
    hdfs: Hdfs,
    metastore: Metastore | None,
    captured: Capture | None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Outcome:
    """Bring the business on ``landing.cluster`` back to ``landing.manifest``'s point."""
    started = time.monotonic()
    manifest = landing.manifest
    when = plan.point_id((now or datetime.now(UTC)).replace(microsecond=0))
    quarantine = posixpath.join(QUARANTINE_ROOT, manifest.business, f"restore-{when}")
    suffix = 1
    while not dry_run and hdfs.status(quarantine) is not None:  # a restore in the same second
        suffix += 1
        quarantine = posixpath.join(QUARANTINE_ROOT, manifest.business, f"restore-{when}-{suffix}")
    outcome = Outcome(manifest.business, landing.cluster, manifest.point, dry_run, quarantine)
    lander = _Lander(hdfs, manifest.snapshot_name, quarantine, dry_run)
    for root, subtree in manifest.subtrees():
        if not verify.has_snapshot(hdfs, root, manifest.snapshot_name):
            raise RestoreError(
                f"{landing.cluster}:{root} has no snapshot {manifest.snapshot_name}: the point cannot be "
                "restored there (nothing was changed)"
            )
        log.info("restore: %s (subtree %s) back to %s", root, subtree or "whole root", manifest.point)
        lander.subtree(root, subtree)
    outcome.actions = lander.actions
    if captured is not None and metastore is not None:
        outcome.metadata_differences = verify.check_metadata(
            captured, metastore, landing.nameservice
        ).mismatches
        if not dry_run:
            outcome.metadata = apply_tables(captured, metastore, landing.nameservice)
            outcome.metadata.update(apply_grants(captured, metastore))
    if not dry_run:
        reports = [verify.check_live(hdfs, manifest)]
        if captured is not None and metastore is not None:
            reports.append(verify.check_metadata(captured, metastore, landing.nameservice))
        outcome.check = verify.merge("live data and metastore against the point", reports)
    outcome.seconds = time.monotonic() - started
    return outcome


# -- the command -----------------------------------------------------------------------------------
def restore_point(clusters: Clusters, landing: PointOnCluster, *, dry_run: bool = False) -> Outcome:
    """:func:`restore` with the cluster's clients and the point's capture (tandem.points.open_point)."""
    from tandem.points import open_point

    opened = open_point(clusters, landing)
    return restore(landing, opened.hdfs, opened.metastore, opened.capture, dry_run=dry_run)


def run_restore(args: Any) -> int:
    """``tandem restore BUSINESS [--point T] [--cluster NAME] [--dry-run] [--yes]``."""
    import json
    import sys

    from tandem.points import find_point, load_business
    from tandem.runtime import cluster_clients_for_cli

    policy, topology = load_business(args.business)
    clusters = cluster_clients_for_cli(args.home)
    landing = find_point(policy, topology, clusters, args.cluster, args.point)
    if not args.dry_run and not args.yes:
        raise RestoreError(
            f"restoring {policy.business} on {landing.cluster} to {landing.manifest.point} moves what its "
            "live data holds beyond that point to the quarantine: add --yes to go ahead (or --dry-run to "
            "see what would change)"
        )
    seen = clusters.observe(landing.cluster)
    if seen.reachable and seen.role == "active" and not args.dry_run:
        log.warning(
            "restore: %s says active: applications using it see the business go back", landing.cluster
        )
    outcome = restore_point(clusters, landing, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2))
    else:
        _print_outcome(outcome, sys.stdout)
    return 0 if outcome.dry_run or (outcome.check is not None and outcome.check.ok) else 1


def _print_outcome(outcome: Outcome, out: Any) -> None:
    verb = "would change" if outcome.dry_run else "changed"
    counts = outcome.counts()
    hdfs_text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing"
    print(f"tandem restore {outcome.business}: {outcome.cluster} to point {outcome.point}", file=out)
    for action in outcome.actions[: verify.SHOW * 5]:
        print(f"  {action}", file=out)
    if len(outcome.actions) > verify.SHOW * 5:
        print(f"  ... and {len(outcome.actions) - verify.SHOW * 5} more", file=out)
    for difference in outcome.metadata_differences:
        print(f"  metastore  {difference}", file=out)
    print(f"HDFS: {verb} {hdfs_text}", file=out)
    if outcome.dry_run:
        print(
            f"metastore: {len(outcome.metadata_differences)} difference(s) to the point's capture", file=out
        )
        return
    changed = ", ".join(f"{k} {v}" for k, v in sorted(outcome.metadata.items()) if v) or "nothing to change"
    print(f"metastore: {changed}", file=out)
    if any(a.kind == "quarantine" for a in outcome.actions):
        print(f"what the live data held beyond the point is in {outcome.quarantine}", file=out)
    check = outcome.check
    if check is not None:
        state = "at the point" if check.ok else f"NOT at the point ({len(check.mismatches)} mismatches)"
        print(f"verified: {outcome.cluster} is {state} ({outcome.seconds:.1f} s)", file=out)
        for line in check.lines():
            print(line, file=out)
