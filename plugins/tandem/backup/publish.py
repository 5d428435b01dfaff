"""Publishing a point (verified first, manifest last and atomic) and expiring old ones.

``publish`` verifies the target's snapshot against the source's, writes the per-file records and
the manifest, atomically and last: before it, the point does not exist. ``apply_retention``
deletes manifests before snapshots, so no half-deleted point is ever listed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from tandem import catalog, plan, verify
from tandem.backup.metadata import _read_capture
from tandem.backup.payloads import Copied, DatasetCopied, Retained, Started, Taken
from tandem.backup.run import Run, guard
from tandem.errors import (
    SnapshotRootError,
    TandemError,
    VerificationError,
)
from tandem.hdfs.client import Hdfs
from tandem.runtime import Clusters

log = logging.getLogger(__name__)


def _previous_records(dst: Hdfs, run: Run) -> verify.Records | None:
    """The per-file records of the newest point before this one, if it has any."""
    earlier = [p for p in catalog.list_points(dst, run.business) if p.instant < run.instant]
    if not earlier or not earlier[-1].files_record:
        return None
    try:
        return verify.records_from_body(catalog.read_json(dst, earlier[-1].files_record))
    except (TandemError, ValueError, OSError) as exc:
        log.warning(
            "publish: records of %s unreadable (%s); every file is checksummed", earlier[-1].point, exc
        )
        return None


def _file_lengths(records: verify.Records, dataset: DatasetCopied) -> list[int]:
    """The length of every file of a dataset at the point, from the point's records (which
    cover every file the check found equal on both sides, so all of them once it passed)."""
    lengths: list[int] = []
    for root, subtree in sorted({(p.root, p.subtree) for p in dataset.paths}):
        rows = records.get(root, {})
        if subtree:
            lengths += [int(row[0]) for rel, row in rows.items() if verify.within(rel, subtree)]
        else:
            lengths += [int(row[0]) for row in rows.values()]
    return lengths


def publish(
    run: Run,
    clusters: Clusters,
    started: Started,
    taken: Taken,
    copies: Sequence[Copied],
    user_data: Mapping[str, int],
) -> catalog.Manifest:
    """Verify what the target holds for the point, write its per-file records, then the
    manifest on the target (atomically, last), then a copy on the source.

    Nothing is published when the check finds a mismatch (VerificationError lists them).
    """
    guard(run, clusters, started, "publish_restore_point")
    src, dst = clusters.hdfs(started.source), clusters.hdfs(started.target)
    for root in taken.roots:
        if not any(s.name == run.snapshot for s in dst.snapshots(root)):
            raise SnapshotRootError(f"target root {root} lacks snapshot {run.snapshot}: not publishing")
    subtrees = sorted(set(taken.subtrees()))
    base_points = [c.base_point for c in copies if c.base_point]
    base = plan.snapshot_name(run.business, catalog.parse_iso(base_points[0])) if base_points else None
    copied: verify.Records = {}
    for c in copies:
        for root, rows in c.verified.items():
            copied.setdefault(root, {}).update(rows)
    # a full copy asked for (an operator's repair) trusts no earlier point's checksums
    previous = None if run.force_full else _previous_records(dst, run)
    checked, records = verify.check_copy(src, dst, run.snapshot, subtrees, previous, base, copied=copied)
    reports = [checked]
    if taken.metadata:
        captured = _read_capture(dst, taken.metadata)
        nameservice = run.topology.clusters[started.target].nameservice
        reports.append(verify.check_metadata(captured, clusters.metastore(started.target), nameservice))
    report = verify.merge("target snapshot and metastore against the source's point", reports)
    if not report.ok:
        raise VerificationError(
            f"{run.snapshot} does not verify on {started.target}; not publishing. "
            f"{len(report.mismatches)} mismatch(es):\n" + "\n".join(report.lines())
        )
    records_at = catalog.records_path(run.business, run.instant)
    records_data = catalog.encode_json(records_at, verify.records_body(run.snapshot, records))
    catalog.write_atomically(dst, records_at, records_data)
    datasets = [ds for c in copies for ds in c.datasets]
    sizes = {ds.name: _file_lengths(records, ds) for ds in datasets}
    modes = {ds.mode for ds in datasets}
    manifest = catalog.Manifest(
        business=run.business,
        point=catalog.iso(run.instant),
        pair=run.policy.pair,
        source=started.source,
        target=started.target,
        snapshot_name=run.snapshot,
        mode="incremental" if modes == {"incremental"} else "full",
        base_point=base_points[0] if base_points and "incremental" in modes else None,
        datasets=[
            catalog.ManifestDataset(
                component=ds.component,
                name=ds.name,
                roots=ds.roots,
                files=len(sizes[ds.name]),
                bytes=sum(sizes[ds.name]),
                mode=ds.mode,
                files_copied=ds.files_copied,
                bytes_copied=ds.bytes_copied,
                quarantined=ds.quarantined,
            )
            for ds in datasets
        ],
        snapshot_times=dict(taken.snapshot_times),
        skew_ms=taken.skew_ms,
        files_copied=sum(ds.files_copied for ds in datasets),
        bytes_copied=sum(ds.bytes_copied for ds in datasets),
        duration_s=round((datetime.now(UTC) - started.started).total_seconds(), 3),
        user_data=dict(user_data),
        verified=True,
        verification=report.to_json(),
        snapshot_roots={root: [list(m) for m in members] for root, members in taken.roots.items()},
        metadata=taken.metadata,
        files_record=records_at,
    )
    # the check above may take long (a checksum of every copied file): the pair and the claim
    # are looked at again right before the point appears, so a run overtaken or fenced meanwhile
    # (its snapshots taken away by a newer run's take) never publishes
    guard(run, clusters, started, "publish_restore_point")
    path = catalog.publish(dst, manifest)
    catalog.write_atomically(src, records_at, records_data)
    catalog.publish(src, manifest)
    log.info(
        "published %s %s: %s, %d files / %d bytes copied, skew %d ms, verified %d files (%d checksummed)%s, "
        "%.1f s (%s)",
        run.business,
        manifest.point,
        manifest.mode,
        manifest.files_copied,
        manifest.bytes_copied,
        manifest.skew_ms,
        report.files,
        report.checksummed,
        f" and {report.tables} table(s)" if report.tables else "",
        manifest.duration_s,
        path,
    )
    return manifest


def apply_retention(run: Run, clusters: Clusters, started: Started) -> Retained:
    """Expire points beyond keep_last or older than max_age: manifests first, then snapshots."""
    guard(run, clusters, started, "apply_retention")
    src, dst = clusters.hdfs(started.source), clusters.hdfs(started.target)
    points = catalog.list_points(dst, run.business)
    retention = run.policy.retention
    decision = plan.choose_expired(
        [p.instant for p in points], retention.keep_last, retention.max_age, datetime.now(UTC)
    )
    expired = [p for p in points if p.instant in set(decision.expire)]
    for point in expired:
        for hdfs in (dst, src):
            catalog.remove(hdfs, run.business, point.instant)
    for point in expired:
        roots = {root for ds in point.datasets for root in ds.roots}
        for hdfs in (dst, src):
            for root in roots:
                status = hdfs.status(root)
                if (
                    status
                    and status.snapshot_enabled
                    and any(s.name == point.snapshot_name for s in hdfs.snapshots(root))
                ):
                    hdfs.delete_snapshot(root, point.snapshot_name)
    names = [p.point for p in expired]
    log.info("apply_retention: %d kept, %d expired %s", len(points) - len(expired), len(expired), names)
    return Retained(len(points) - len(expired), tuple(names))
