"""The pure planner: names, snapshot roots, full or incremental, diff -> steps, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tandem.errors import CopyError, SnapshotRootError
from tandem.hdfs.types import DiffEntry, DiffType
from tandem.plan import (
    Copy,
    Delete,
    Move,
    Step,
    SyncMetadata,
    choose_expired,
    choose_mode,
    decide_root,
    parse_point_id,
    parse_snapshot_name,
    plan_incremental,
    plan_snapshot_roots,
    point_id,
    snapshot_name,
)

T = datetime(2026, 11, 20, 13, tzinfo=UTC)
TMP = ".tandem-diff-tmp"


def M(path: str) -> DiffEntry:
    return DiffEntry(DiffType.MODIFY, path)


def C(path: str) -> DiffEntry:
    return DiffEntry(DiffType.CREATE, path)


def D(path: str) -> DiffEntry:
    return DiffEntry(DiffType.DELETE, path)


def R(source: str, target: str) -> DiffEntry:
    return DiffEntry(DiffType.RENAME, source, target)


def _show(step: Step) -> str:
    if isinstance(step, Move):
        return f"mv {step.source} {step.target}"
    if isinstance(step, Delete):
        return f"rm {step.path}"
    if isinstance(step, SyncMetadata):
        return f"attrs {step.path}"
    if step.recursive:
        return f"cp -r {step.path}" + (f" except {','.join(step.exclude)}" if step.exclude else "")
    return f"cp {step.path}"


def _steps(entries: list[DiffEntry], subtree: str = "") -> list[str]:
    forward = [_show(s) for s in plan_incremental(entries, subtree).steps()]
    # HDFS promises no order of entries: the plan must not depend on it.
    assert [_show(s) for s in plan_incremental(list(reversed(entries)), subtree).steps()] == forward
    return forward


# --------------------------------------------------------------------------------------------
# Names


def test_snapshot_name_and_point_id() -> None:
    assert point_id(T) == "20261120T130000Z"
    assert snapshot_name("billing", T) == "tandem-billing-20261120T130000Z"
    assert (
        snapshot_name("billing", T.astimezone(timezone(timedelta(hours=2))))
        == "tandem-billing-20261120T130000Z"
    )
    assert parse_point_id("20261120T130000Z") == T
    assert parse_snapshot_name("tandem-billing-20261120T130000Z") == ("billing", T)
    assert parse_snapshot_name("tandem-billing_eu-20261120T130000Z") == ("billing_eu", T)


@pytest.mark.parametrize(
    "name",
    [
        "s20130412-151029.033",
        "tandem-billing-20261120",
        "tandem-Billing-20261120T130000Z",
        "tandem-billing-20261340T130000Z",
        "tandem-billing-20261120T130000Z.tmp",
        "tandem--20261120T130000Z",
    ],
)
def test_foreign_snapshot_names_are_not_ours(name: str) -> None:
    assert parse_snapshot_name(name) is None


@pytest.mark.parametrize(
    ("business", "instant", "reason"),
    [
        ("billing", datetime(2026, 11, 20, 13), "has no time zone"),
        ("billing", T.replace(microsecond=5), "fraction of a second"),
        ("Billing", T, "not a business name"),
        ("bill-ing", T, "not a business name"),
    ],
)
def test_snapshot_name_refuses_what_cannot_round_trip(business: str, instant: datetime, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        snapshot_name(business, instant)


def test_parse_point_id_refuses_other_text() -> None:
    with pytest.raises(ValueError):
        parse_point_id("2026-11-20T13:00:00Z")


# --------------------------------------------------------------------------------------------
# Snapshot roots


@pytest.mark.parametrize(
    ("path", "snapshottable", "root", "subtree", "make", "reason"),
    [
        (
            "/data/billing/details",
            [],
            "/data/billing/details",
            "",
            True,
            "nothing around /data/billing/details",
        ),
        (
            "/data/billing/details",
            ["/data/billing/details"],
            "/data/billing/details",
            "",
            False,
            "already snapshottable",
        ),
        ("/data/billing/details/", ["/data/billing/details"], "/data/billing/details", "", False, "already"),
        (
            "/data/billing/details",
            ["/data"],
            "/data",
            "billing/details",
            False,
            "/data is already snapshottable: ",
        ),
        (
            "/data/billing/details",
            ["/data", "/data/billing"],
            "/data/billing",
            "details",
            False,
            "filtered to details/",
        ),
        ("/data/billing/details", ["/"], "/", "data/billing/details", False, "/ is already snapshottable"),
        (
            "/data/billing",
            ["/data/bill", "/data/billing2"],
            "/data/billing",
            "",
            True,
            "will be made snapshottable",
        ),
        ("/data/billing", ["/data", "/data/billing/x"], "/data", "billing", False, "root for /data/billing"),
    ],
)
def test_decide_root(
    path: str, snapshottable: list[str], root: str, subtree: str, make: bool, reason: str
) -> None:
    decision = decide_root(path, snapshottable)
    assert (decision.root, decision.subtree, decision.make_snapshottable) == (root, subtree, make)
    assert reason in decision.reason


def test_a_snapshottable_descendant_stops_with_a_sentence() -> None:
    with pytest.raises(SnapshotRootError) as caught:
        decide_root("/data/billing", ["/data/billing/details", "/other"])
    assert str(caught.value) == (
        "/data/billing cannot be snapshotted in one piece: /data/billing/details inside it is already "
        "snapshottable and HDFS does not nest snapshottable directories; protect /data/billing/details "
        "instead, or delete its snapshots and disallow them"
    )


def test_roots_shared_by_datasets_are_one_snapshot() -> None:
    roots = plan_snapshot_roots(
        {
            "/data/billing/details": ["/data/billing/details"],
            "billing.customers": ["/warehouse/billing.db/customers", "/archive/customers/p=2019"],
            "billing_mart.settlements": ["/warehouse/billing_mart.db/settlements"],
        },
        snapshottable=["/warehouse", "/data/billing/details"],
    )
    assert sorted(roots) == ["/archive/customers/p=2019", "/data/billing/details", "/warehouse"]
    warehouse = roots["/warehouse"]
    assert not warehouse.make_snapshottable
    assert warehouse.datasets == ("billing.customers", "billing_mart.settlements")
    assert [m.subtree for m in warehouse.members] == ["billing.db/customers", "billing_mart.db/settlements"]
    assert roots["/archive/customers/p=2019"].make_snapshottable
    assert roots["/data/billing/details"].members[0].subtree == ""


def test_paths_to_be_made_snapshottable_inside_one_another_share_the_outer() -> None:
    roots = plan_snapshot_roots(
        {"/data/billing": ["/data/billing"], "billing.customers": ["/data/billing/customers"]},
        snapshottable=[],
    )
    assert list(roots) == ["/data/billing"]
    root = roots["/data/billing"]
    assert root.make_snapshottable
    assert [(m.dataset, m.subtree) for m in root.members] == [
        ("/data/billing", ""),
        ("billing.customers", "customers"),
    ]
    assert "/data/billing will be made snapshottable and holds /data/billing/customers" in root.reason


def test_the_same_path_twice_is_one_member() -> None:
    roots = plan_snapshot_roots({"t": ["/w/t", "/w/t/"]}, snapshottable=["/w/t"])
    assert [(m.dataset, m.path) for m in roots["/w/t"].members] == [("t", "/w/t")]


def test_every_root_problem_is_named_at_once() -> None:
    with pytest.raises(SnapshotRootError) as caught:
        plan_snapshot_roots({"a": ["/a"], "b": ["/b"], "c": ["/c"]}, snapshottable=["/a/x", "/b/y"])
    message = str(caught.value)
    assert message.startswith("a: /a cannot be snapshotted in one piece")
    assert "; b: /b cannot be snapshotted in one piece" in message
    assert "/c" not in message


# --------------------------------------------------------------------------------------------
# Full or incremental


@pytest.mark.parametrize(
    ("last", "force", "changed", "mode", "reason"),
    [
        (None, False, False, "full", "no restore point has been published yet: the first copy is full"),
        (None, True, False, "full", "a full copy was requested"),
        (T, True, False, "full", "a full copy was requested"),
        (
            T,
            False,
            True,
            "full",
            "the target changed since restore point 20261120T130000Z, so the source's diff no longer "
            "applies: copying in full",
        ),
        (T, False, False, "incremental", "copying the changes since restore point 20261120T130000Z"),
    ],
)
def test_choose_mode(last: datetime | None, force: bool, changed: bool, mode: str, reason: str) -> None:
    assert choose_mode(last, force, changed) == (mode, reason)


# --------------------------------------------------------------------------------------------
# Diff -> steps

P = TMP + "/"


@pytest.mark.parametrize(
    ("entries", "steps"),
    [
        pytest.param([], [], id="nothing changed"),
        pytest.param([M(""), C("new")], ["cp -r new", "attrs "], id="a create"),
        pytest.param([M("f")], ["cp f"], id="a modified file"),
        pytest.param(
            [M(""), R("a", "b"), R("b", "c")],
            [f"mv b {P}0.b", f"mv a {P}1.a", f"mv {P}1.a b", f"mv {P}0.b c", "attrs "],
            id="rename chain a->b, b->c",
        ),
        pytest.param(
            [M(""), R("a", "b"), R("b", "a")],
            [f"mv b {P}0.b", f"mv a {P}1.a", f"mv {P}0.b a", f"mv {P}1.a b", "attrs "],
            id="swap a<->b",
        ),
        pytest.param(
            [M(""), R("a", "b"), R("b", "c"), R("c", "a")],
            [
                f"mv c {P}0.c",
                f"mv b {P}1.b",
                f"mv a {P}2.a",
                f"mv {P}0.c a",
                f"mv {P}2.a b",
                f"mv {P}1.b c",
                "attrs ",
            ],
            id="cycle a->b->c->a",
        ),
        pytest.param(
            [M(""), R("d", "e"), M("d"), D("d/x")],
            [f"mv d {P}0.d", f"rm {P}0.d/x", f"mv {P}0.d e", "attrs e", "attrs "],
            id="delete beneath a renamed directory is addressed in the tmp dir",
        ),
        pytest.param(
            [M(""), D("p"), R("p/x", "q")],
            [f"mv p/x {P}0.x", "rm p", f"mv {P}0.x q", "attrs "],
            id="child renamed out of a deleted parent first",
        ),
        pytest.param(
            [M(""), D("a"), R("b", "a")],
            [f"mv b {P}0.b", "rm a", f"mv {P}0.b a", "attrs "],
            id="rename onto a deleted name",
        ),
        pytest.param(
            [M(""), C("final.csv")],
            ["cp -r final.csv", "attrs "],
            id="file created then renamed is a create at its final path",
        ),
        pytest.param(
            [M(""), R("a", "b"), M("a"), C("a/new.csv")],
            [f"mv a {P}0.a", f"mv {P}0.a b", "cp -r b/new.csv", "attrs b", "attrs "],
            id="created inside a renamed directory lands under the new name",
        ),
        pytest.param(
            [M(""), R("a", "b"), M("a"), M("a/f"), C("a/g"), D("a/h"), M("a/sub"), C("a/sub/k")],
            [
                f"mv a {P}0.a",
                f"rm {P}0.a/h",
                f"mv {P}0.a b",
                "cp b/f",
                "cp -r b/g",
                "cp -r b/sub/k",
                "attrs b/sub",
                "attrs b",
                "attrs ",
            ],
            id="directory renamed with modified children beneath",
        ),
        pytest.param(
            [M(""), R("a", "b"), R("a/x", "b/y"), M("a/x")],
            [f"mv a/x {P}0.x", f"mv a {P}1.a", f"mv {P}1.a b", f"mv {P}0.x b/y", "cp b/y", "attrs "],
            id="rename inside a renamed directory: deepest first, then parents first",
        ),
        pytest.param(
            [M(""), R("a", "b"), C("a")],
            [f"mv a {P}0.a", f"mv {P}0.a b", "cp -r a", "attrs "],
            id="a new item takes a renamed item's old name",
        ),
        pytest.param(
            [M(""), R("a", "b"), M("a")],
            [f"mv a {P}0.a", f"mv {P}0.a b", "cp b", "attrs "],
            id="a renamed file also modified is copied at its new name",
        ),
        pytest.param(
            [M(""), C("c"), M("a"), R("a/x", "c/x"), M("a/x")],
            [f"mv a/x {P}0.x", f"mv {P}0.x c/x", "cp -r c except c/x", "cp c/x", "attrs a", "attrs "],
            id="item renamed into a created directory is not copied again",
        ),
        pytest.param(
            [M(""), C("c"), R("a", "c/x"), R("e", "c/x/y")],
            [
                f"mv e {P}0.e",
                f"mv a {P}1.a",
                f"mv {P}1.a c/x",
                f"mv {P}0.e c/x/y",
                "cp -r c except c/x",
                "attrs ",
            ],
            id="nested items renamed into a created directory: the outer one is excluded",
        ),
        pytest.param(
            [M(""), D("d/x"), D("d"), D("d/y")],
            ["rm d", "attrs "],
            id="deletes top-most only",
        ),
        pytest.param(
            [M(""), D("d"), M("d"), M("d/f"), C("d/g"), C("d")],
            ["rm d", "cp -r d", "attrs "],
            id="stale entries beneath a delete are dropped, a create reusing the name is not",
        ),
        pytest.param(
            [M("./a/"), C("/a//b")],
            ["cp -r a/b", "attrs a"],
            id="paths are normalised",
        ),
    ],
)
def test_plan_incremental_steps(entries: list[DiffEntry], steps: list[str]) -> None:
    assert _steps(entries) == steps


@pytest.mark.parametrize(
    ("entries", "subtree", "steps"),
    [
        pytest.param(
            [M(""), M("s"), C("s/new"), C("other"), M("o/f")],
            "s",
            ["cp -r new", "attrs "],
            id="entries outside the subtree are dropped",
        ),
        pytest.param(
            [M(""), M("o"), M("s"), R("o/x", "s/x"), M("o/x"), C("o/x/g")],
            "s",
            ["cp -r x", "attrs "],
            id="renamed into the subtree is a create, and covers what changed inside it",
        ),
        pytest.param(
            [M(""), M("s"), M("o"), R("s/y", "o/y"), M("s/y"), M("s/y/f"), C("s/y/g"), D("s/y/h")],
            "s",
            ["rm y", "attrs "],
            id="renamed out of the subtree is a delete, and what changed inside it goes too",
        ),
        pytest.param(
            [M("s/d"), R("s/d/x", "o/x"), M("s"), D("s/d")],
            "s",
            ["rm d", "attrs "],
            id="moved out of a deleted directory: one delete",
        ),
        pytest.param(
            [M("s/t"), R("s/t/a", "s/t/b"), R("s/u", "s/t/u")],
            "s/t",
            [f"mv a {P}0.a", f"mv {P}0.a b", "cp -r u", "attrs "],
            id="a rename from a sibling into a nested subtree",
        ),
        pytest.param(
            [M("s"), R("s/a", "s/b"), C("s/a/f")],
            "s",
            [f"mv a {P}0.a", f"mv {P}0.a b", "cp -r b/f", "attrs "],
            id="a create beneath a directory renamed inside the subtree",
        ),
    ],
)
def test_plan_incremental_subtree(entries: list[DiffEntry], subtree: str, steps: list[str]) -> None:
    assert _steps(entries, subtree) == steps


@pytest.mark.parametrize(
    ("entries", "subtree", "reason"),
    [
        ([M(""), R("s", "s2")], "s/t", "s was renamed to s2, moving the dataset directory s/t"),
        ([M(""), D("s")], "s/t", "s was deleted, and with it the dataset directory s/t"),
        ([M("s"), D("s/t")], "s/t", "s/t was deleted, and with it the dataset directory s/t"),
        (
            [M(""), R("x", "s"), R("s", "old")],
            "s/t",
            "s was renamed to old, moving the dataset directory s/t",
        ),
        ([M(""), M("s"), R("s/t", "s/t2"), C("s/t")], "s/t", "s/t was renamed to s/t2, moving"),
        ([M("s"), R("x", "s/t"), D("s/t")], "s/t", "s/t was deleted, and with it the dataset directory s/t"),
        ([M("s"), R("x", "s/t")], "s/t", "x was renamed to s/t, replacing the dataset directory s/t"),
        ([M(""), C("s")], "s/t", "s was created, replacing the dataset directory s/t"),
    ],
)
def test_dataset_directory_replaced_needs_a_full_copy(
    entries: list[DiffEntry], subtree: str, reason: str
) -> None:
    plan = plan_incremental(entries, subtree)
    assert plan.full_copy_reason is not None and reason in plan.full_copy_reason
    assert plan.steps() == ()
    assert plan.summary() == f"full copy needed: {plan.full_copy_reason}"


def test_the_subtree_modified_alone_is_not_replaced() -> None:
    plan = plan_incremental([M(""), M("s"), M("s/t")], "s/t")
    assert plan.full_copy_reason is None
    assert [_show(s) for s in plan.steps()] == ["cp "]  # its own attributes; the copier sees a directory


def test_reasons_say_why() -> None:
    plan = plan_incremental(
        [M(""), R("a", "b"), M("a"), D("a/h"), C("a/g"), M("a/f"), R("o/x", "s2")],
        "",
    )
    reasons = {_show(step): step.reason for step in plan.steps()}
    assert reasons == {
        f"mv a {P}1.a": "renamed from a: parked in the tmp dir",
        f"mv o/x {P}0.x": "renamed from o/x: parked in the tmp dir",
        f"rm {P}1.a/h": "deleted inside a, which is parked in the tmp dir to be renamed",
        f"mv {P}1.a b": "renamed from a",
        f"mv {P}0.x s2": "renamed from o/x",
        "cp -r b/g": "created (reported as a/g, beneath a renamed directory)",
        "cp b/f": "modified (renamed from a/f)",
        "attrs b": "directory modified (renamed from a)",
        "attrs ": "directory modified",
    }
    deleted = next(s for s in plan.steps() if isinstance(s, Delete))
    assert deleted.original == "a/h"


def test_edge_reasons_name_the_other_side() -> None:
    plan = plan_incremental([R("o/x", "s/x"), R("s/y", "o/y")], "s")
    assert [(s.path, s.reason) for s in plan.copies] == [("x", "moved into the dataset from o/x")]
    assert [(d.path, d.reason) for d in plan.deletes] == [("y", "moved out of the dataset to o/y")]


def test_moves_make_parents_and_plan_summary() -> None:
    plan = plan_incremental([M(""), C("c"), R("a", "c/deep/x"), M("f")])
    moves = [s for s in plan.steps() if isinstance(s, Move)]
    assert [(m.target, m.make_parents) for m in moves] == [(f"{P}0.a", True), ("c/deep/x", True)]
    assert plan.needs_tmp_dir
    assert plan.summary() == (
        "1 renames, 0 deletes, 2 copies (1 created, 1 modified), 1 directory attribute updates"
    )
    copies = [s for s in plan.steps() if isinstance(s, Copy)]
    assert [(c.path, c.recursive, c.exclude) for c in copies] == [
        ("c", True, ("c/deep/x",)),
        ("f", False, ()),
    ]


def test_no_renames_needs_no_tmp_dir() -> None:
    plan = plan_incremental([M(""), C("a"), D("b")])
    assert not plan.needs_tmp_dir
    assert not plan.is_empty


@pytest.mark.parametrize(
    ("entries", "tmp_dir", "reason"),
    [
        ([C("x/.work/f")], "x/.work", r"touches x/.work/f, inside the tmp dir x/\.work"),
        ([R(".tandem-diff-tmp", "a")], TMP, "touches .tandem-diff-tmp"),
        ([C("a")], "", "must be a directory under the dataset"),
    ],
)
def test_tmp_dir_must_be_free(entries: list[DiffEntry], tmp_dir: str, reason: str) -> None:
    with pytest.raises(CopyError, match=reason):
        plan_incremental(entries, tmp_dir=tmp_dir)


def test_a_large_diff_plans_quickly() -> None:
    # Real diffs reach hundreds of thousands of entries; anything quadratic would take minutes.
    entries = [M("")]
    for i in range(5_000):
        entries += [R(f"d{i}", f"e{i}"), M(f"d{i}"), C(f"d{i}/new"), D(f"d{i}/old"), M(f"d{i}/f"), C(f"n{i}")]
    started = datetime.now(UTC)
    plan = plan_incremental(entries)
    assert datetime.now(UTC) - started < timedelta(seconds=10)
    assert (len(plan.renames), len(plan.deletes), len(plan.copies)) == (5_000, 5_000, 15_000)


# --------------------------------------------------------------------------------------------
# Retention

HOUR = timedelta(hours=1)


def _hours_ago(*hours: int) -> list[datetime]:
    return [T - h * HOUR for h in hours]


@pytest.mark.parametrize(
    ("points", "keep_last", "max_age", "keep", "expire"),
    [
        pytest.param([], 3, None, [], [], id="nothing published"),
        pytest.param(_hours_ago(0, 1, 2, 3, 4), 3, None, [0, 1, 2], [3, 4], id="beyond keep_last"),
        pytest.param(_hours_ago(0, 1, 2, 3, 4), 10, 2 * HOUR, [0, 1, 2], [3, 4], id="older than max_age"),
        pytest.param(_hours_ago(0, 1, 2, 3, 4), 2, 3 * HOUR, [0, 1], [2, 3, 4], id="the stricter rule wins"),
        pytest.param(
            _hours_ago(50, 60, 70), 24, 24 * HOUR, [50], [60, 70], id="newest kept even when too old"
        ),
        pytest.param(_hours_ago(200), 1, HOUR, [200], [], id="a single point always remains"),
        pytest.param(_hours_ago(3, 0, 1, 1, 2), 2, None, [0, 1], [2, 3], id="unordered and repeated input"),
        pytest.param(_hours_ago(0, -1), 1, None, [-1], [0], id="a point ahead of the clock is the newest"),
    ],
)
def test_choose_expired(
    points: list[datetime], keep_last: int, max_age: timedelta | None, keep: list[int], expire: list[int]
) -> None:
    choice = choose_expired(points, keep_last, max_age, now=T)
    assert choice.keep == tuple(_hours_ago(*keep))
    assert choice.expire == tuple(_hours_ago(*expire))
    assert set(choice.reasons) == set(choice.keep) | set(choice.expire)


def test_retention_reasons() -> None:
    keep, expire, reasons = choose_expired(_hours_ago(0, 1, 30, 200), keep_last=3, max_age=24 * HOUR, now=T)
    assert [reasons[p] for p in keep] == [
        "the newest restore point is always kept",
        "among the 3 newest and within max_age 1d",
    ]
    assert [reasons[p] for p in expire] == [
        "1d6h old, older than max_age 1d",
        "beyond the 3 newest restore points",
    ]


@pytest.mark.parametrize(
    ("points", "keep_last", "now", "reason"),
    [
        ([T], 0, T, "keep_last must be at least 1"),
        ([datetime(2026, 1, 1)], 1, T, "has no time zone"),
        ([T], 1, datetime(2026, 1, 1), "has no time zone"),
    ],
)
def test_retention_refuses_bad_input(
    points: list[datetime], keep_last: int, now: datetime, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        choose_expired(points, keep_last, None, now)
