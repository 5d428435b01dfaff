"""Pure planning: restore-point names, snapshot roots, full or incremental, diff -> copy plan, retention.

Nothing here talks to a cluster. The shell gathers facts (snapshottable directories, a snapshot
diff report, the published points) and these functions decide, each decision with its reason.
One module per decision: :mod:`.names`, :mod:`.roots`, :mod:`.replay` (with the snapshot-diff
path conventions it relies on), :mod:`.retention`.
"""

from __future__ import annotations

from tandem.plan.names import (
    POINT_FORMAT,
    SNAPSHOT_PREFIX,
    parse_point_id,
    parse_snapshot_name,
    point_id,
    snapshot_name,
)
from tandem.plan.replay import (
    DEFAULT_TMP_DIR,
    Copy,
    CopyPlan,
    Delete,
    Move,
    Rename,
    Step,
    SyncMetadata,
    plan_incremental,
)
from tandem.plan.retention import RetentionChoice, choose_expired
from tandem.plan.roots import (
    Mode,
    ModeChoice,
    RootDecision,
    RootMember,
    SnapshotRoot,
    choose_mode,
    decide_root,
    plan_snapshot_roots,
)

__all__ = [
    "DEFAULT_TMP_DIR",
    "POINT_FORMAT",
    "SNAPSHOT_PREFIX",
    "Copy",
    "CopyPlan",
    "Delete",
    "Mode",
    "ModeChoice",
    "Move",
    "Rename",
    "RetentionChoice",
    "RootDecision",
    "RootMember",
    "SnapshotRoot",
    "Step",
    "SyncMetadata",
    "choose_expired",
    "choose_mode",
    "decide_root",
    "parse_point_id",
    "parse_snapshot_name",
    "plan_incremental",
    "plan_snapshot_roots",
    "point_id",
    "snapshot_name",
]
