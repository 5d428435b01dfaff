"""The ``distcp`` copy engine: DistCp on YARN, for production volumes.

Tandem builds the command and checks DistCp's own preconditions for ``-diff`` before it runs,
so a refusal names the reason instead of surfacing as a failed MapReduce job. Only used where
a ``hadoop`` command exists; the embedded clusters use the ``webhdfs`` engine.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass

from tandem.errors import CopyError

log = logging.getLogger(__name__)

# user, group, permission, ACL, xattr, times: what a restore needs (not block size or replication
# policy, which the target cluster's defaults own).
PRESERVE = "-pugpaxt"


@dataclass(frozen=True)
class DistCpJob:
    """What to run: ``source``/``target`` are full URIs of one snapshot root on each cluster."""

    source: str
    target: str
    snapshot: str
    base_snapshot: str | None = None  # set: incremental with -diff base snapshot
    bandwidth_mb: int | None = None
    maps: int | None = None
    config_dir: str | None = None  # the Hadoop configuration of the cluster that runs the job


def build_command(job: DistCpJob, hadoop: str = "hadoop") -> list[str]:
    """The ``hadoop distcp`` argv for a job (pure).

    Full: copy the source snapshot's tree with ``-update -delete`` so the target equals it.
    Incremental: ``-update -diff <base> <snapshot>`` on the snapshot root, which DistCp turns
    into renames and deletes on the target followed by a copy of the changed files.
    """
    cmd = [hadoop, *(["--config", job.config_dir] if job.config_dir else []), "distcp", "-update", PRESERVE]
    if job.bandwidth_mb is not None:
        cmd += ["-bandwidth", str(job.bandwidth_mb)]
    if job.maps is not None:
        cmd += ["-m", str(job.maps)]
    if job.base_snapshot is None:
        cmd += ["-delete", f"{job.source.rstrip('/')}/.snapshot/{job.snapshot}", job.target]
    else:
        cmd += ["-diff", job.base_snapshot, job.snapshot, job.source, job.target]
    return cmd


def check_diff_preconditions(
    job: DistCpJob, source_snapshots: set[str], target_snapshots: set[str], target_changed: bool
) -> None:
    """DistCp ``-diff`` refuses unless both snapshots exist on the source, the base exists on
    the target, and the target did not change since the base. Raise with the reason (pure)."""
    if job.base_snapshot is None:
        return
    missing = {job.base_snapshot, job.snapshot} - source_snapshots
    if missing:
        raise CopyError(f"distcp -diff: source {job.source} lacks snapshot(s) {sorted(missing)}")
    if job.base_snapshot not in target_snapshots:
        raise CopyError(f"distcp -diff: target {job.target} lacks base snapshot {job.base_snapshot}")
    if target_changed:
        raise CopyError(
            f"distcp -diff: target {job.target} changed since {job.base_snapshot}; needs a full copy"
        )


def available(hadoop: str = "hadoop") -> bool:
    return shutil.which(hadoop) is not None


def run(job: DistCpJob, hadoop: str = "hadoop") -> None:
    """Run DistCp and wait. Safe to retry: ``-update`` skips files already equal."""
    if not available(hadoop):
        raise CopyError("the distcp engine needs a `hadoop` command on this worker; use engine: webhdfs")
    cmd = build_command(job, hadoop)
    log.info("running %s", " ".join(cmd))
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        raise CopyError(f"distcp exited {result.returncode}: {' '.join(cmd)}")
