"""Is a cluster at a restore point? Checks that compare, never change.

Three questions, each answered with a :class:`Report` listing every mismatch:

- **The point's copy** (:func:`check_copy`, run by ``publish_restore_point`` before the point
  exists): the target's snapshot holds the same tree as the source's snapshot of the same name
  (paths, kinds, lengths, modification times), and every file that changed since the previous
  point has the source's checksum. Its output is the per-file records stored with the point.
- **The point on a cluster** (:func:`verify_point`): every file of the cluster's snapshot, by
  length and checksum, against the source's snapshot of the same name, or against the per-file
  records when the source cannot be reached (the case that matters in a disaster); the
  captured metadata against the cluster's metastore.
- **The live data** (``live=True``): the cluster's live trees against its own snapshot of the
  point (one GETSNAPSHOTDIFF per root: the cost is what changed, not what exists), and the
  metastore against the capture: "is this cluster at the point right now?".
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tandem.hdfs.client import Hdfs
from tandem.hdfs.types import DiffType, FileStatus, SnapshotDiffReport

if TYPE_CHECKING:
    from tandem.capture import Capture
    from tandem.catalog import Manifest
    from tandem.metastore import Metastore

log = logging.getLogger(__name__)

RECORDS_FORMAT = 1
SHOW = 20  # mismatches printed before "... and N more"


def join(base: str, rel: str) -> str:
    return posixpath.join(base, rel) if rel else base


def snap_path(root: str, snapshot: str, rel: str = "") -> str:
    return join(posixpath.join(root, ".snapshot", snapshot), rel)


def has_snapshot(hdfs: Hdfs, root: str, name: str) -> bool:
    """``root`` exists, is snapshottable and has a snapshot called ``name``. Read-only."""
    status = hdfs.status(root)
    return bool(status and status.snapshot_enabled and any(s.name == name for s in hdfs.snapshots(root)))


def within(path: str, subtree: str) -> bool:
    """``path`` is ``subtree`` or below it (relative paths; "" is everything)."""
    return not subtree or path == subtree or path.startswith(subtree.rstrip("/") + "/")


@dataclass
class Report:
    """What a check compared and every mismatch it found."""

    what: str
    files: int = 0
    checksummed: int = 0
    tables: int = 0
    partitions: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.what,
            "files": self.files,
            "checksummed": self.checksummed,
            "tables": self.tables,
            "partitions": self.partitions,
            "mismatches": len(self.mismatches),
            "first_mismatches": self.mismatches[:SHOW],
        }

    def lines(self) -> list[str]:
        shown = [f"  {m}" for m in self.mismatches[:SHOW]]
        if len(self.mismatches) > SHOW:
            shown.append(f"  ... and {len(self.mismatches) - SHOW} more")
        return shown


def _checksum(hdfs: Hdfs, path: str) -> str:
    cs = hdfs.checksum(path)
    return f"{cs.algorithm}:{cs.bytes}"


def listing(hdfs: Hdfs, top: str) -> dict[str, FileStatus]:
    """relpath -> status of everything under ``top``; empty when ``top`` is missing."""
    if hdfs.status(top) is None:
        return {}
    return {e.relpath: e.status for e in hdfs.walk(top)}


# -- at publish -----------------------------------------------------------------------------------
Records = dict[str, dict[str, list[Any]]]  # root -> {relpath from root: [length, mtime, checksum]}


def check_copy(
    src: Hdfs,
    dst: Hdfs,
    snapshot: str,
    subtrees: Iterable[tuple[str, str]],
    previous: Records | None,
    base: str | None = None,
    *,
    copied: Records | None = None,
    parallelism: int = 8,
) -> tuple[Report, Records]:
    """Compare the target's snapshot with the source's; return the report and the records.

    With ``base`` (the previous point, verified when it was published, whose ``previous``
    records cover every root) the cost is the change: only the paths that either side's
    GETSNAPSHOTDIFF from ``base`` names are compared, and every other path keeps its record.
    Otherwise every path is listed on both sides. A file is compared by kind, length and
    modification time, then by checksum unless a record already says so: the previous point's,
    or ``copied``, the records the copy made of the files it just wrote and verified (a file whose
    length or modification time moved since is checksummed again). Status and checksum calls
    run on ``parallelism`` threads. Read-only.
    """
    report = Report("target snapshot against source snapshot")
    records: Records = {}
    with ThreadPoolExecutor(max(1, parallelism), thread_name_prefix="tandem-verify") as pool:
        for root, subtree in subtrees:
            before = (previous or {}).get(root)
            kept = records.setdefault(root, {})
            pair = _Compared(
                src, dst, root, snapshot, report, kept, before or {}, (copied or {}).get(root, {}), pool
            )
            if (
                base is not None
                and before is not None
                and has_snapshot(src, root, base)
                and has_snapshot(dst, root, base)
            ):
                pair.changes_since(base, subtree)
            else:
                pair.tree(subtree)
    return report, records


@dataclass(frozen=True)
class _Seen:
    """What the comparison needs of one side's path: its kind, length and modification time."""

    is_dir: bool
    length: int
    modification_time: int


def _seen(status: FileStatus | None) -> _Seen | None:
    return None if status is None else _Seen(status.is_dir, status.length, status.modification_time)


@dataclass
class _Changes:
    """What two snapshot diffs (the source's and the target's) say about one dataset.

    ``changed``: every path either names within the dataset; ``created``: created or renamed
    into place; ``gone``: deleted or renamed away (with everything below); ``directories``:
    MODIFY with changed paths below it in one diff and created, deleted or renamed in neither,
    so a directory on both sides, as at the base.
    """

    changed: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    directories: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, diffs: Iterable[SnapshotDiffReport], subtree: str) -> _Changes:
        out = cls()
        replaced: set[str] = set()  # its kind may differ from the base's
        holding: set[str] = set()
        for diff in diffs:
            modified: set[str] = set()
            parents: set[str] = set()
            for entry in diff.entries:
                for path in (entry.source, entry.target):
                    if not path:
                        continue
                    parents.update(_ancestors(path))
                    if within(path, subtree):
                        out.changed.add(path)
                        if entry.type is DiffType.CREATE or (
                            entry.type is DiffType.RENAME and path == entry.target
                        ):
                            out.created.add(path)
                    (modified if entry.type is DiffType.MODIFY else replaced).add(path)
                if entry.type in (DiffType.DELETE, DiffType.RENAME) and entry.source:
                    out.gone.add(entry.source)
            holding |= modified & parents
        out.directories = holding - replaced
        return out


def _replaced_above(diffs: Iterable[SnapshotDiffReport], subtree: str) -> bool:
    """Whether a directory above ``subtree`` was created, deleted or renamed on a side: what is
    below it then is in neither diff, so the dataset must be compared whole."""
    return bool(subtree) and any(
        path and path != subtree and within(subtree, path)
        for diff in diffs
        for entry in diff.entries
        if entry.type is not DiffType.MODIFY
        for path in (entry.source, entry.target)
    )


def _ancestors(path: str) -> Iterator[str]:
    """The relative path's ancestors, nearest first, not counting the root ("")."""
    current = posixpath.dirname(path)
    while current:
        yield current
        current = posixpath.dirname(current)


@dataclass(frozen=True)
class _Outcome:
    """One path's comparison: counted as a file, checksummed, its mismatch or its record."""

    file: bool = False
    checksummed: bool = False
    mismatch: str | None = None
    record: list[Any] | None = None


class _Compared:
    """One root's comparison between the source's and the target's snapshot of a point.

    Paths are compared on the pool's threads; their outcomes are applied in path order, so the
    report reads the same however the calls interleave.
    """

    def __init__(
        self,
        src: Hdfs,
        dst: Hdfs,
        root: str,
        snapshot: str,
        report: Report,
        kept: dict[str, list[Any]],
        before: dict[str, list[Any]],
        copied: dict[str, list[Any]],
        pool: ThreadPoolExecutor,
    ) -> None:
        self.src, self.dst, self.root, self.snapshot = src, dst, root, snapshot
        self.report, self.kept, self.before, self.copied = report, kept, before, copied
        self.pool = pool

    def tree(self, top: str) -> None:
        """Every path under ``top`` (root-relative), listed on both sides."""
        want, have = self.pool.map(
            lambda hdfs: listing(hdfs, snap_path(self.root, self.snapshot, top)), (self.src, self.dst)
        )
        paths = sorted(want.keys() | have.keys())
        self._apply([(join(top, rel), _seen(want.get(rel)), _seen(have.get(rel))) for rel in paths])

    def whole(self, top: str) -> None:
        """Everything under ``top``, listed on both sides, and ``top`` itself when both hold it
        (a file on one side and a directory on the other is a mismatch; a dataset directory
        that only one side has is compared by its contents, as :meth:`tree` does)."""
        where = snap_path(self.root, self.snapshot, top)
        ours, theirs = self.pool.map(lambda hdfs: _seen(hdfs.status(where)), (self.src, self.dst))
        if ours is not None and theirs is not None:
            self._apply([(top, ours, theirs)])
        if (ours is None or ours.is_dir) and (theirs is None or theirs.is_dir):
            self.tree(top)

    def changes_since(self, base: str, subtree: str) -> None:
        """The paths either side changed since ``base``; the others keep their records.

        A diff names each changed path; a directory is MODIFY when its children changed, but
        only the children it names changed. Below a deleted or renamed-away directory the diff
        names nothing, and everything there is gone. Each changed path is then looked up on both
        sides, except what is known without asking: a file the copy just wrote has the source
        snapshot's length and time in its record (snapshots do not change), and a path that is
        MODIFY with changed paths below it in one diff, and created, deleted or renamed in
        neither, is a directory on both sides, as at ``base`` (verified then).
        """
        diffs = list(
            self.pool.map(
                lambda hdfs: hdfs.snapshot_diff(self.root, base, self.snapshot), (self.src, self.dst)
            )
        )
        if _replaced_above(diffs, subtree):
            self.whole(subtree)
            return
        changes = _Changes.of(diffs, subtree)
        self.kept.update(_unchanged(self.before, subtree, changes.changed, changes.gone))
        paths = sorted(changes.changed - changes.directories)

        def statuses(path: str) -> tuple[str, _Seen | None, _Seen | None]:
            where = snap_path(self.root, self.snapshot, path)
            known = self.copied.get(path)
            ours = _Seen(False, known[0], known[1]) if known is not None else _seen(self.src.status(where))
            return path, ours, _seen(self.dst.status(where))

        found = list(self.pool.map(statuses, paths))
        self._apply(found)
        for path, ours, theirs in found:
            # a created directory's children are in neither diff; where the target holds a file
            # instead, that mismatch is reported already
            created = path in changes.created
            if created and ours is not None and ours.is_dir and (theirs is None or theirs.is_dir):
                self.tree(path)

    def _apply(self, items: list[tuple[str, _Seen | None, _Seen | None]]) -> None:
        outcomes = self.pool.map(lambda item: self.compare(*item), items)
        for (path, _ours, _theirs), outcome in zip(items, outcomes, strict=True):
            self.report.files += outcome.file
            self.report.checksummed += outcome.checksummed
            if outcome.mismatch is not None:
                self.report.mismatches.append(outcome.mismatch)
            if outcome.record is not None:
                self.kept[path] = outcome.record

    def compare(self, path: str, ours: _Seen | None, theirs: _Seen | None) -> _Outcome:
        """One path on both sides; reads only (thread-safe)."""
        where = join(self.root, path)
        if ours is None and theirs is None:
            return _Outcome()
        if ours is None or theirs is None:
            return _Outcome(mismatch=f"{where}: only on the {'target' if ours is None else 'source'}")
        if ours.is_dir != theirs.is_dir:
            return _Outcome(mismatch=f"{where}: a file on one side, a directory on the other")
        if ours.is_dir:
            return _Outcome()
        if (ours.length, ours.modification_time) != (theirs.length, theirs.modification_time):
            return _Outcome(
                file=True,
                mismatch=f"{where}: length/mtime {theirs.length}/{theirs.modification_time} on the target, "
                f"{ours.length}/{ours.modification_time} on the source",
            )
        for known in (self.copied.get(path), self.before.get(path)):
            if known is not None and (known[0], known[1]) == (theirs.length, theirs.modification_time):
                return _Outcome(file=True, record=known)
        theirs_sum = _checksum(self.dst, snap_path(self.root, self.snapshot, path))
        if theirs_sum != _checksum(self.src, snap_path(self.root, self.snapshot, path)):
            return _Outcome(
                file=True, checksummed=True, mismatch=f"{where}: checksum differs from the source"
            )
        return _Outcome(
            file=True, checksummed=True, record=[theirs.length, theirs.modification_time, theirs_sum]
        )


def _unchanged(
    before: dict[str, list[Any]], subtree: str, changed: set[str], gone: set[str]
) -> dict[str, list[Any]]:
    """The records of ``before`` within ``subtree`` that neither name a ``changed`` path nor lie
    below a ``gone`` one: a dict copy and a lookup per change, and one prefix scan only when a
    directory went (the cost is the change, not the business)."""
    kept = dict(before) if not subtree else {p: r for p, r in before.items() if within(p, subtree)}
    for path in changed:
        kept.pop(path, None)
    below = tuple(f"{path}/" for path in gone)
    if below:
        for path in [p for p in kept if p.startswith(below)]:
            del kept[path]
    return kept


def records_body(snapshot: str, records: Records) -> dict[str, Any]:
    return {"format": RECORDS_FORMAT, "snapshot": snapshot, "roots": records}


def records_from_body(body: Mapping[str, Any]) -> Records:
    if body.get("format") != RECORDS_FORMAT:
        raise ValueError(f"unknown file records format {body.get('format')!r}")
    roots: Records = body["roots"]
    return roots


# -- a point on a cluster ---------------------------------------------------------------------------
def check_snapshot(
    hdfs: Hdfs,
    manifest: Manifest,
    source: Hdfs | None,
    records: Records | None,
) -> Report:
    """Every file of ``hdfs``'s snapshot of the point against the source's snapshot (when
    ``source`` is given) or the per-file records. Read-only."""
    name = manifest.snapshot_name
    against = "the source's snapshot" if source is not None else "the point's file records"
    report = Report(f"snapshot {name} against {against}")
    for root, subtree in manifest.subtrees():
        if not has_snapshot(hdfs, root, name):
            report.mismatches.append(f"{root}: has no snapshot {name}")
            continue
        have = listing(hdfs, snap_path(root, name, subtree))
        if source is not None:
            want_status = listing(source, snap_path(root, name, subtree))
            want = {rel: (s.length, None) for rel, s in want_status.items() if not s.is_dir}
        else:
            rows = (records or {}).get(root, {})
            want = {
                rel[len(subtree) + 1 :] if subtree else rel: (row[0], row[2])
                for rel, row in rows.items()
                if within(rel, subtree) and rel != subtree
            }
        files = {rel: s for rel, s in have.items() if not s.is_dir}
        for rel in sorted(want.keys() - files.keys()):
            report.mismatches.append(f"{join(root, join(subtree, rel))}: missing")
        for rel in sorted(files.keys() - want.keys()):
            report.mismatches.append(f"{join(root, join(subtree, rel))}: not in the point")
        for rel in sorted(files.keys() & want.keys()):
            report.files += 1
            path = join(subtree, rel)
            length, expected = want[rel]
            if files[rel].length != length:
                report.mismatches.append(
                    f"{join(root, path)}: length {files[rel].length}, point has {length}"
                )
                continue
            if expected is None and source is not None:
                expected = _checksum(source, snap_path(root, name, path))
            got = _checksum(hdfs, snap_path(root, name, path))
            report.checksummed += 1
            if got != expected:
                report.mismatches.append(f"{join(root, path)}: checksum differs from the point")
    return report


def check_live(hdfs: Hdfs, manifest: Manifest) -> Report:
    """The live trees against the cluster's own snapshot of the point. Read-only.

    GETSNAPSHOTDIFF names the paths that changed since the point (the cost is the change, not
    the business); each is then compared by content (kind, length, checksum, owner, permission,
    ACL), so a file put back by a restore (a new inode with the point's bytes) matches. A
    directory whose only change is its times matches too.
    """
    from tandem.restore import plan_landing

    report = Report(f"live data against snapshot {manifest.snapshot_name}")
    for root, _subtree in manifest.subtrees():
        if not has_snapshot(hdfs, root, manifest.snapshot_name):
            report.mismatches.append(f"{root}: has no snapshot {manifest.snapshot_name}")
    if report.mismatches:
        return report
    # a landing may take two steps for one path (quarantine what differs, copy the point's
    # back): a path is one mismatch, said once, with its first step's reason
    said: dict[str, str] = {}
    for action in plan_landing(hdfs, manifest):
        said.setdefault(action.path, f"{action.path}: {action.detail or action.kind}")
    report.mismatches = list(said.values())
    return report


def check_metadata(capture: Capture, metastore: Metastore, nameservice: str) -> Report:
    """The cluster's metastore against the point's capture. Read-only."""
    from tandem.capture import compare_tables

    report = Report("metastore against the point's capture")
    report.tables = len(capture.tables)
    report.partitions = sum(len(t.partitions) for t in capture.tables)
    report.mismatches = compare_tables(capture, metastore, nameservice)
    return report


def merge(what: str, reports: Iterable[Report]) -> Report:
    out = Report(what)
    for r in reports:
        out.files += r.files
        out.checksummed += r.checksummed
        out.tables += r.tables
        out.partitions += r.partitions
        out.mismatches += r.mismatches
    return out


# -- the command -------------------------------------------------------------------------------------
def run_verify(args: Any) -> int:
    """``tandem verify BUSINESS [--point T] [--cluster NAME] [--live]``: exit 0 only when the
    cluster holds the point exactly."""
    import json

    from tandem.points import find_point, load_business, load_records, open_point
    from tandem.runtime import cluster_clients_for_cli

    policy, topology = load_business(args.business)
    clusters = cluster_clients_for_cli(args.home)
    landing = find_point(policy, topology, clusters, args.cluster, args.point)
    opened = open_point(clusters, landing)
    manifest, hdfs = landing.manifest, opened.hdfs
    reports = []
    if args.live:
        reports.append(check_live(hdfs, manifest))
    else:
        source = _reachable_source(clusters, landing.other, manifest)
        records = None if source is not None else load_records(hdfs, manifest)
        if source is None and records is None:
            from tandem.errors import VerificationError

            raise VerificationError(
                f"{landing.other} cannot be reached and point {manifest.point} has no file records: "
                "nothing to verify its snapshot against (try --live)"
            )
        reports.append(check_snapshot(hdfs, manifest, source, records))
    if opened.capture is not None and opened.metastore is not None:
        reports.append(check_metadata(opened.capture, opened.metastore, landing.nameservice))
    result = {
        "business": policy.business,
        "cluster": landing.cluster,
        "point": manifest.point,
        "snapshot": manifest.snapshot_name,
        "live": bool(args.live),
        "ok": all(r.ok for r in reports),
        "checks": [r.to_json() for r in reports],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        what = "live data" if args.live else "snapshot"
        print(f"tandem verify {policy.business}: {landing.cluster} {what} against point {manifest.point}")
        for r in reports:
            if r.tables:
                counted = f"{r.tables} tables, {r.partitions} partitions: "
            elif r.files:
                counted = f"{r.files} files, {r.checksummed} checksummed: "
            else:
                counted = ""
            print(f"  {r.what}: {counted}{len(r.mismatches)} mismatch(es)")
            for line in r.lines():
                print(f"  {line}")
        verdict = "is at" if result["ok"] else "is NOT at"
        print(f"{landing.cluster} {verdict} {policy.business}'s point {manifest.point}")
    return 0 if result["ok"] else 1


def _reachable_source(clusters: Any, other: str, manifest: Manifest) -> Hdfs | None:
    """The other cluster's client when it answers and holds the point's snapshots, else None."""
    try:
        source: Hdfs = clusters.hdfs(other)
        if all(has_snapshot(source, root, manifest.snapshot_name) for root, _ in manifest.subtrees()):
            return source
    except Exception as exc:  # the hook raises its own types when no NameNode answers
        log.warning(
            "verify: %s cannot be reached (%s); checking against the point's file records", other, exc
        )
    return None
