"""Promotion against the real ZooKeeper: fencing, compare-and-set, refusals, races."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from tandem.failover.promote import PromotionResult, promote
from tandem.failover.state import ALIVE_PATH, CLUSTER_PATH
from tests.integration.test_failover_support import ZkPair

pytestmark = pytest.mark.integration


def versions(pair: ZkPair) -> dict[str, int]:
    return {name: pair.admin[name].exists(CLUSTER_PATH).version for name in pair.names}


def test_promotion_fences_the_old_primary_first_then_activates(pair: ZkPair) -> None:
    result = promote("standby", "standby", pair.zk_hosts)
    assert result.outcome == "promoted", result.reason
    assert result.reason == "standby is now active (epoch 2); primary was set to standby first"
    assert (result.epoch, result.fenced) == (2, "primary")
    old, new = pair.record("primary"), pair.record("standby")
    assert (old.role, old.epoch, new.role, new.epoch) == ("standby", 2, "active", 2)
    # both chroots live on one server, so transaction ids order the two writes
    fenced_at = pair.admin["primary"].exists(CLUSTER_PATH).mzxid
    activated_at = pair.admin["standby"].exists(CLUSTER_PATH).mzxid
    assert fenced_at < activated_at


def test_promoting_back_reverses_the_roles_again(pair: ZkPair) -> None:
    assert promote("standby", "standby", pair.zk_hosts).promoted
    back = promote("primary", "primary", pair.zk_hosts)
    assert back.promoted and back.epoch == 3
    assert (pair.record("primary").role, pair.record("standby").role) == ("active", "standby")


@pytest.mark.parametrize("confirmation", ["Standby", "standby ", "", "primary"])
def test_a_wrong_confirmation_is_refused_and_nothing_is_written(pair: ZkPair, confirmation: str) -> None:
    before = versions(pair)
    result = promote("standby", confirmation, pair.zk_hosts)
    assert result.outcome == "refused"
    assert (
        f"the confirmation {confirmation!r} does not repeat the cluster name 'standby' exactly"
        in result.reason
    )
    assert versions(pair) == before


def test_a_dead_target_is_refused_and_nothing_is_written(pair: ZkPair) -> None:
    pair.kill("standby")
    before = versions(pair)
    result = promote("standby", "standby", pair.zk_hosts)
    assert result.outcome == "refused"
    assert result.reason.startswith("standby is dead (no /tandem/alive)")
    assert versions(pair) == before


def test_an_unreachable_target_is_refused(pair: ZkPair) -> None:
    pair.proxies["standby"].cut()
    before = versions(pair)
    began = time.monotonic()
    result = promote("standby", "standby", pair.zk_hosts, timeout=2.0)
    assert result.outcome == "refused"
    assert result.reason.startswith("standby is unreachable (ZooKeeper")
    assert time.monotonic() - began < 15  # refuses instead of hanging on the dead ZooKeeper
    assert versions(pair) == before


def test_a_corrupt_target_record_is_refused(pair: ZkPair) -> None:
    pair.write_raw("standby", b"{not json")
    result = promote("standby", "standby", pair.zk_hosts)
    assert result.outcome == "refused"
    assert "standby's record is unreadable (/tandem/cluster is corrupt (not UTF-8 JSON" in result.reason


def test_an_unreachable_old_primary_cannot_be_fenced_and_the_result_says_so(pair: ZkPair) -> None:
    pair.proxies["primary"].cut()
    result = promote("standby", "standby", pair.zk_hosts, timeout=2.0)
    assert result.promoted and result.fenced is None
    assert "primary is unreachable and could not be fenced" in result.reason
    assert pair.record("primary").role == "active"  # it comes back saying active: split brain
    assert pair.record("standby").role == "active"


def test_a_corrupt_old_primary_record_is_fenced_with_a_valid_one(pair: ZkPair) -> None:
    pair.write_raw("primary", b"\xff")
    result = promote("standby", "standby", pair.zk_hosts)
    assert result.promoted, result.reason
    assert pair.record("primary").role == "standby"


def test_promoting_the_active_cluster_again_changes_nothing(pair: ZkPair) -> None:
    before = versions(pair)
    result = promote("primary", "primary", pair.zk_hosts)
    assert result.outcome == "unchanged" and result.ok and not result.promoted
    assert (
        "primary is already active (epoch 1) and standby is standby (standby, alive, epoch 1)"
        in result.reason
    )
    assert versions(pair) == before


def test_promotion_ends_a_split_brain_by_fencing_the_other(pair: ZkPair) -> None:
    pair.write("standby", "active", 2)  # both say active now
    result = promote("standby", "standby", pair.zk_hosts)
    assert result.promoted and result.fenced == "primary" and result.epoch == 3
    assert (pair.record("primary").role, pair.record("standby").role) == ("standby", "active")


def test_a_target_dying_during_the_promotion_is_not_activated(pair: ZkPair) -> None:
    result = promote("standby", "standby", pair.zk_hosts, before_write=lambda: pair.kill("standby"))
    assert result.outcome == "conflict"
    assert "standby died during the promotion" in result.reason
    assert "primary was already set to standby, so no cluster is active now" in result.reason
    assert pair.record("standby").role == "standby"
    assert pair.admin["standby"].exists(ALIVE_PATH) is None


def _race(pair: ZkPair, targets: tuple[str, str], synchronised: bool) -> list[PromotionResult]:
    barrier = threading.Barrier(2, timeout=10)
    results: list[PromotionResult] = []

    def run(target: str) -> None:
        hook = barrier.wait if synchronised else None
        results.append(promote(target, target, pair.zk_hosts, before_write=hook))  # type: ignore[arg-type]

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    return results


@pytest.mark.parametrize("synchronised", [True, False], ids=["both-read-first", "free-running"])
def test_two_concurrent_promotions_of_one_target_exactly_one_wins(pair: ZkPair, synchronised: bool) -> None:
    for round_ in range(5):
        results = _race(pair, ("standby", "standby"), synchronised)
        winners = [r for r in results if r.promoted]
        assert len(winners) == 1, [r.reason for r in results]
        loser = next(r for r in results if not r.promoted)
        assert loser.outcome in ("conflict", "unchanged"), loser.reason
        if synchronised:
            assert loser.outcome == "conflict"
            assert "changed after it was read (another promotion?)" in loser.reason
        assert (pair.record("primary").role, pair.record("standby").role) == ("standby", "active")
        # reset for the next round: roles back, through a promotion as well
        assert promote("primary", "primary", pair.zk_hosts).promoted, round_


def test_two_opposite_promotions_never_both_win(pair: ZkPair) -> None:
    pair.write("primary", "standby", 1)  # nobody active: both operators promote "their" cluster
    for _round in range(5):
        results = _race(pair, ("primary", "standby"), synchronised=True)
        assert sum(r.promoted for r in results) <= 1, [r.reason for r in results]
        roles = [pair.record(name).role for name in pair.names]
        assert roles.count("active") <= 1, roles
        pair.write("primary", "standby", 1)
        pair.write("standby", "standby", 1)


_PROCESS = """
import json, sys, time
from tandem.failover.promote import promote
hosts = json.loads(sys.argv[1]); start_at = float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
print(json.dumps(promote("standby", "standby", hosts).to_json()))
"""


def test_two_promotion_processes_at_once_exactly_one_wins(pair: ZkPair) -> None:
    # both processes import first, then start at the same wall-clock instant
    start_at = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS, json.dumps(pair.zk_hosts), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _err in outputs]
    assert [r["outcome"] for r in results].count("promoted") == 1, results
    assert (pair.record("primary").role, pair.record("standby").role) == ("standby", "active")
