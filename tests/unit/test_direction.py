from datetime import UTC, datetime

import pytest

from tandem.backup import decide_direction
from tandem.errors import PreflightError
from tandem.failover.state import ClusterRecord
from tandem.runtime import Observation


def obs(name, role=None, alive=True, reachable=True):
    record = ClusterRecord.new(name, role, 1, datetime(2026, 1, 1, tzinfo=UTC)) if role else None
    return Observation(name, record, alive, reachable, None if reachable else "connection refused")


def test_active_primary_backs_up_to_standby():
    d = decide_direction(obs("primary", "active"), obs("standby", "standby"))
    assert (d.source, d.target) == ("primary", "standby")
    assert d.reason == "primary is active and standby standby"


def test_after_promotion_backups_run_the_other_way():
    d = decide_direction(obs("primary", "standby"), obs("standby", "active"))
    assert (d.source, d.target) == ("standby", "primary")


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        (obs("primary", "active"), obs("standby", "active"), "split brain"),
        (obs("primary", "standby"), obs("standby", "standby"), "no active cluster"),
        (obs("primary", "active"), obs("standby", "standby", reachable=False), "standby is unreachable"),
        (obs("primary", "active"), obs("standby", "standby", alive=False), "standby is down"),
        (obs("primary", "active", alive=False), obs("standby", "standby"), "not alive"),
        (obs("primary", reachable=False), obs("standby", "standby"), "primary unreachable"),
        (obs("primary", "active"), obs("standby"), "says unknown, not standby"),
    ],
)
def test_refusals_say_why(first, second, reason):
    with pytest.raises(PreflightError, match=reason):
        decide_direction(first, second)


def test_a_record_naming_another_cluster_is_no_standby():
    # two clusters sharing one ZooKeeper: the standby's record names the primary
    shared = Observation(
        "standby", ClusterRecord.new("primary", "standby", 1, datetime(2026, 1, 1, tzinfo=UTC)), True, True
    )
    with pytest.raises(PreflightError, match="target standby says unknown, not standby"):
        decide_direction(obs("primary", "active"), shared)
