"""Snapshot roots of a business (nesting, shared roots) and the full-or-incremental choice. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from tandem.errors import SnapshotRootError
from tandem.plan.names import point_id
from tandem.plan.paths import _abs_under, _norm_abs

# --------------------------------------------------------------------------------------------
# Snapshot roots


@dataclass(frozen=True)
class RootMember:
    """One protected path inside a snapshot root; ``subtree`` is relative to the root."""

    dataset: str
    path: str
    subtree: str
    reason: str


@dataclass(frozen=True)
class SnapshotRoot:
    """A directory snapshotted once per restore point for every member inside it.

    ``make_snapshottable``: it is not snapshottable yet and must be allowed first.
    """

    path: str
    make_snapshottable: bool
    members: tuple[RootMember, ...]

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.dataset for m in self.members))

    @property
    def reason(self) -> str:
        return "; ".join(dict.fromkeys(m.reason for m in self.members))


@dataclass(frozen=True)
class RootDecision:
    """Where one path is snapshotted: ``root`` itself, with the path's ``subtree`` under it."""

    path: str
    root: str
    subtree: str
    make_snapshottable: bool
    reason: str


def decide_root(path: str, snapshottable: Iterable[str]) -> RootDecision:
    """The snapshot root of one protected path, given the snapshottable directories.

    The path itself or its nearest snapshottable ancestor when there is one (the diff is then
    filtered to the path's subtree); the path itself, to be made snapshottable, when nothing
    around it is. A snapshottable descendant (and no snapshottable ancestor) raises
    :class:`SnapshotRootError`: HDFS forbids nesting, so the path cannot be snapshotted at once.
    """
    target = _norm_abs(path)
    existing = {_norm_abs(p) for p in snapshottable}
    if target in existing:
        return RootDecision(target, target, "", False, f"{target} is already snapshottable")
    ancestors = [p for p in existing if _abs_under(target, p)]
    if ancestors:
        root = max(ancestors, key=len)
        subtree = target[len(root) :].lstrip("/")
        return RootDecision(
            target,
            root,
            subtree,
            False,
            f"{root} is already snapshottable: it is the root for {target}, whose changes are "
            f"filtered to {subtree}/",
        )
    below = sorted(p for p in existing if _abs_under(p, target))
    if below:
        raise SnapshotRootError(
            f"{target} cannot be snapshotted in one piece: {', '.join(below)} inside it "
            f"{'is' if len(below) == 1 else 'are'} already snapshottable and HDFS does not nest "
            f"snapshottable directories; protect {' and '.join(below)} instead, or delete "
            f"{'its' if len(below) == 1 else 'their'} snapshots and disallow them"
        )
    return RootDecision(
        target, target, "", True, f"nothing around {target} is snapshottable: it will be made snapshottable"
    )


def plan_snapshot_roots(
    datasets: Mapping[str, Sequence[str]], snapshottable: Iterable[str]
) -> dict[str, SnapshotRoot]:
    """Root path -> :class:`SnapshotRoot` for every path of every dataset, shared roots merged.

    ``datasets`` maps a dataset name (``/data/billing/details``, ``billing.customers``) to its
    paths (for tables: the location and each partition location outside it). Paths that would
    each be made snapshottable but lie one inside another share the outer one, since HDFS cannot
    nest them. Raises :class:`SnapshotRootError` naming every path that cannot be snapshotted.
    """
    existing = tuple(snapshottable)
    decisions: list[tuple[str, RootDecision]] = []
    problems: list[str] = []
    for dataset, paths in datasets.items():
        for path in paths:
            try:
                decisions.append((dataset, decide_root(path, existing)))
            except SnapshotRootError as exc:
                problems.append(f"{dataset}: {exc}")
    if problems:
        raise SnapshotRootError("; ".join(problems))
    new_roots = {d.root for _, d in decisions if d.make_snapshottable}
    outermost = {r for r in new_roots if not any(_abs_under(r, other) for other in new_roots)}
    members: dict[str, list[RootMember]] = {}
    for dataset, decision in decisions:
        root, reason = decision.root, decision.reason
        if decision.make_snapshottable and root not in outermost:
            root = next(r for r in outermost if _abs_under(decision.path, r))
            reason = f"{root} will be made snapshottable and holds {decision.path}, so they share it"
        subtree = decision.path[len(root) :].lstrip("/")
        member = RootMember(dataset, decision.path, subtree, reason)
        if member not in members.setdefault(root, []):
            members[root].append(member)
    return {
        root: SnapshotRoot(
            root, root in outermost, tuple(sorted(found, key=lambda m: (m.subtree, m.dataset)))
        )
        for root, found in sorted(members.items())
    }


# --------------------------------------------------------------------------------------------
# Full or incremental

Mode = Literal["full", "incremental"]


class ModeChoice(NamedTuple):
    mode: Mode
    reason: str


def choose_mode(last_point: datetime | None, force_full: bool, target_changed_since_last: bool) -> ModeChoice:
    """Full the first time, when asked, or when the target moved away from the last point.

    An incremental copy replays the source's diff on the target, which is only right when the
    target still equals the last point (the rule DistCp ``-diff`` checks too).
    """
    if force_full:
        return ModeChoice("full", "a full copy was requested")
    if last_point is None:
        return ModeChoice("full", "no restore point has been published yet: the first copy is full")
    since = point_id(last_point)
    if target_changed_since_last:
        return ModeChoice(
            "full",
            f"the target changed since restore point {since}, so the source's diff no longer applies: "
            "copying in full",
        )
    return ModeChoice("incremental", f"copying the changes since restore point {since}")
