"""Restore-point manifests: published last and atomically, listed, read, expired.

A restore point exists only once its manifest is at
``/.tandem/restore-points/<business>/<T>.json`` on the target (``T`` as ``%Y%m%dT%H%M%SZ``).
The manifest is written to a dot-prefixed temporary name in the same directory and renamed
into place (RENAME with OVERWRITE, so replacing a manifest leaves no window without one), an
atomic step in HDFS; readers skip temporary names and unreadable files, so a half-written
manifest is never taken for a restore point.

Beside each manifest, the directory ``<T>/`` holds what the point needs besides its
snapshots: ``metadata.json`` (the metastore capture taken with the snapshots) and
``files.json.gz`` (path, length, modification time and checksum of every file, written at
publish, so a point can be verified when the other cluster is gone). Both are named in the
manifest; retention removes the directory after the manifest.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import logging
import posixpath
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from tandem.errors import ClusterError, RemoteHdfsError
from tandem.hdfs.client import Hdfs
from tandem.plan import point_id

log = logging.getLogger(__name__)

ROOT = "/.tandem/restore-points"


def iso(instant: datetime) -> str:
    """UTC ISO-8601 with a ``Z`` and milliseconds only when there are any."""
    instant = instant.astimezone(UTC)
    text = instant.strftime("%Y-%m-%dT%H:%M:%S")
    if instant.microsecond:
        text += f".{instant.microsecond // 1000:03d}"
    return text + "Z"


def parse_iso(text: str) -> datetime:
    """An ISO-8601 instant (``Z`` or an offset) as an aware UTC datetime."""
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return instant.astimezone(UTC)


class ManifestDataset(BaseModel):
    """One dataset as a manifest records it (what the point holds of it and what the run copied)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    component: str
    name: str
    roots: list[str]
    files: int = 0
    bytes: int = 0
    mode: str | None = None
    files_copied: int = 0
    bytes_copied: int = 0
    # paths the target held beyond the base point, moved to /.tandem/quarantine by this run
    quarantined: list[str] = []


class Manifest(BaseModel):
    """The manifest contract (DESIGN.md); extra keys are kept, never dropped."""

    model_config = ConfigDict(frozen=True, extra="allow")

    business: str
    point: str
    pair: str
    source: str
    target: str
    snapshot_name: str
    mode: str
    base_point: str | None = None
    datasets: list[ManifestDataset]
    snapshot_times: dict[str, str]
    skew_ms: int
    files_copied: int
    bytes_copied: int
    duration_s: float
    user_data: dict[str, Any] = {}
    # True only when publish checked the point (what it checked is in ``verification``)
    verified: bool = False
    verification: dict[str, Any] = {}
    # snapshot root -> [[dataset, subtree], ...] as take decided them
    snapshot_roots: dict[str, list[list[str]]] = {}
    metadata: str | None = None  # path of the metastore capture, None without tables
    files_record: str | None = None  # path of the per-file records

    def subtrees(self) -> list[tuple[str, str]]:
        """(root, subtree) of every protected tree; points without ``snapshot_roots`` (older
        manifests) protect their dataset roots whole."""
        if self.snapshot_roots:
            return sorted(
                {(root, sub) for root, members in self.snapshot_roots.items() for _, sub in members}
            )
        return sorted({(root, "") for ds in self.datasets for root in ds.roots})

    @property
    def instant(self) -> datetime:
        return parse_iso(self.point)

    @property
    def point_id(self) -> str:
        return point_id(self.instant)


def manifest_dir(business: str) -> str:
    return posixpath.join(ROOT, business)


def manifest_path(business: str, instant: datetime) -> str:
    return posixpath.join(manifest_dir(business), point_id(instant) + ".json")


def claim_path(business: str) -> str:
    """The point of the run of a business under way, claimed by its ``take`` (on the source):
    a run whose point is not the claimed one was overtaken by a newer run, and stops."""
    return posixpath.join(manifest_dir(business), ".run.json")


def point_dir(business: str, instant: datetime) -> str:
    """Where a point keeps its metadata capture and per-file records."""
    return posixpath.join(manifest_dir(business), point_id(instant))


def metadata_path(business: str, instant: datetime) -> str:
    return posixpath.join(point_dir(business, instant), "metadata.json")


def records_path(business: str, instant: datetime) -> str:
    return posixpath.join(point_dir(business, instant), "files.json.gz")


def write_atomically(hdfs: Hdfs, path: str, data: bytes) -> None:
    """Temporary dot-name in the same directory, then RENAME with OVERWRITE: readers see the
    old content or the new, never a partial file and never no file. Idempotent."""
    tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.tmp")
    hdfs.mkdirs(posixpath.dirname(path))
    hdfs.write(tmp, data, overwrite=True)
    hdfs.replace(tmp, path)


def publish(hdfs: Hdfs, manifest: Manifest) -> str:
    """Write the manifest atomically (see :func:`write_atomically`). Idempotent for one point:
    an existing manifest of the same point is replaced in one step."""
    final = manifest_path(manifest.business, manifest.instant)
    write_atomically(hdfs, final, manifest.model_dump_json(indent=2).encode())
    return final


def encode_json(path: str, body: Any) -> bytes:
    """``body`` as :func:`write_json` stores it at ``path``: compact JSON, gzipped (level 1: as
    small as level 6 within a few percent for records, several times faster) for .gz paths."""
    data = json.dumps(body, separators=(",", ":")).encode()
    return gzip.compress(data, 1) if path.endswith(".gz") else data


def write_json(hdfs: Hdfs, path: str, body: Any) -> None:
    """A JSON document (gzipped when ``path`` ends in .gz), written atomically."""
    write_atomically(hdfs, path, encode_json(path, body))


def read_json(hdfs: Hdfs, path: str) -> Any:
    """A document written by :func:`write_json`; RemoteHdfsError when it is missing."""
    data = hdfs.read_bytes(path)
    text = gzip.decompress(data) if path.endswith(".gz") else data
    # a large document is many small objects: the cyclic collector, run every few hundred
    # allocations, would walk them again and again (twice the parse time); none are cycles
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(text)
    finally:
        if was_enabled:
            gc.enable()


def find(hdfs: Hdfs, business: str, instant: datetime) -> Manifest | None:
    """The published manifest of one point, or None. Read-only."""
    path = manifest_path(business, instant)
    if hdfs.status(path) is None:
        return None
    return Manifest.model_validate_json(hdfs.read_bytes(path))


def remove_unpublished_dirs(hdfs: Hdfs, business: str, published: set[str]) -> list[str]:
    """Delete the point directories of points published nowhere (``published``: the point ids
    with a manifest on either cluster): what a run that died after ``take`` left, its capture
    and perhaps its records. Such a point never existed, so nothing of value is lost.
    Idempotent; one LISTSTATUS."""
    directory = manifest_dir(business)
    if hdfs.status(directory) is None:
        return []
    entries = hdfs.list(directory)
    published = published | {
        e.path_suffix[: -len(".json")] for e in entries if e.path_suffix.endswith(".json")
    }
    removed = []
    for entry in entries:
        if entry.is_dir and entry.path_suffix not in published:
            path = posixpath.join(directory, entry.path_suffix)
            hdfs.delete(path, recursive=True)
            removed.append(path)
    return removed


def list_points(hdfs: Hdfs, business: str) -> list[Manifest]:
    """Every published restore point of a business, oldest first. Read-only.

    Temporary names are skipped; an unreadable manifest is logged and skipped, not fatal.
    """
    directory = manifest_dir(business)
    if hdfs.status(directory) is None:
        return []
    out = []
    for status in hdfs.list(directory):
        name = status.path_suffix
        if name.startswith(".") or not name.endswith(".json"):
            continue
        path = posixpath.join(directory, name)
        try:
            out.append(Manifest.model_validate_json(hdfs.read_bytes(path)))
        except (ValidationError, ValueError, RemoteHdfsError) as exc:
            log.warning("skipping unreadable manifest %s: %s", path, exc)
    return sorted(out, key=lambda m: m.instant)


def latest(hdfs: Hdfs, business: str) -> Manifest | None:
    """The newest published restore point: one LISTSTATUS and one read (the next older one
    when the newest manifest is unreadable). Read-only."""
    directory = manifest_dir(business)
    try:
        entries = hdfs.list(directory)
    except RemoteHdfsError as exc:
        if exc.exception == "FileNotFoundException":
            return None
        raise
    # point ids (20261120T130000Z) are fixed-width: by name is by time
    names = sorted(
        e.path_suffix
        for e in entries
        if e.path_suffix.endswith(".json") and not e.path_suffix.startswith(".")
    )
    for name in reversed(names):
        path = posixpath.join(directory, name)
        try:
            return Manifest.model_validate_json(hdfs.read_bytes(path))
        except (ValidationError, ValueError, RemoteHdfsError) as exc:
            log.warning("skipping unreadable manifest %s: %s", path, exc)
    return None


def remove(hdfs: Hdfs, business: str, instant: datetime) -> bool:
    """Delete one manifest, then the point's directory: from the first step on the point no
    longer exists. Idempotent."""
    removed = hdfs.delete(manifest_path(business, instant))
    hdfs.delete(point_dir(business, instant), recursive=True)
    return removed


def run_restore_points(args: argparse.Namespace) -> int:
    """``tandem restore-points BUSINESS``: the published points, from the manifests of the
    business's pair member that receives backups (the pair's standby when roles cannot be read)."""
    from tandem.errors import RestoreError
    from tandem.points import backup_target, load_business, pair_members
    from tandem.runtime import cluster_clients_for_cli

    policy, topology = load_business(args.business)  # an unknown business is an error, not "no points"
    clients = cluster_clients_for_cli(args.home)
    try:
        target = backup_target(policy, topology, clients)
    except RestoreError:
        target = pair_members(policy, topology)[1]
    try:
        points = list_points(clients.hdfs(target), args.business)
    except Exception as exc:  # the hook raises its own types when no NameNode answers
        raise ClusterError(
            f"cannot read the manifests on {target} ({exc}); is it up? (`tandem status`, `tandem up`)"
        ) from exc
    if args.json:
        print(json.dumps([p.model_dump(mode="json") for p in points], indent=2))
        return 0
    if not points:
        print(f"no restore points for {args.business}")
        return 0
    print(f"{'point':<22} {'mode':<12} {'files':>7} {'bytes':>12} {'skew ms':>8}")
    for p in points:
        print(f"{p.point:<22} {p.mode:<12} {p.files_copied:>7} {p.bytes_copied:>12} {p.skew_ms:>8}")
    return 0
