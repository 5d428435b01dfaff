"""The arbiter, the pair assessment and the promotion checks: every combination, as tables."""

from __future__ import annotations

import itertools
import json

import pytest

from tandem.failover.agent import AgentState, Health, next_step
from tandem.failover.arbiter import ClusterView, PairHealth, PromoteHow, advice, arbitrate, assess_pair
from tandem.failover.promote import check_request, check_target
from tandem.failover.state import ClusterRecord
from tandem_dev.drill import summary, targets_met

# The seven states a cluster can be seen in: role x liveness, and unreachable (role unknown).
STATES = ("AA", "AD", "SA", "SD", "UA", "UD", "X")
_ROLE = {"A": "active", "S": "standby", "U": "unknown"}
_LIVE = {"A": "alive", "D": "dead"}


def view(name: str, state: str, epoch: int = 4) -> ClusterView:
    if state == "X":
        return ClusterView.unreachable(name, "connection refused")
    role = _ROLE[state[0]]
    return ClusterView(
        name,
        role,  # type: ignore[arg-type]
        _LIVE[state[1]],  # type: ignore[arg-type]
        None if role == "unknown" else epoch,
        "not UTF-8 JSON" if role == "unknown" else None,
    )


# Rows: the cluster clients point at now. Columns: the other one.
# S = stay, M = move to the other cluster, B = split brain (stay, reason says so).
TABLE = """
        AA AD SA SD UA UD X
    AA  B  B  S  S  S  S  S
    AD  B  B  S  S  S  S  S
    SA  M  S  S  S  S  S  S
    SD  M  S  S  S  S  S  S
    UA  S  S  S  S  S  S  S
    UD  M  S  S  S  S  S  S
    X   M  S  S  S  S  S  S
"""


def _table() -> dict[tuple[str, str], str]:
    rows = [line.split() for line in TABLE.strip().splitlines()]
    header = rows[0]
    return {(row[0], col): cell for row in rows[1:] for col, cell in zip(header, row[1:], strict=True)}


EXPECTED = _table()


def test_the_table_covers_every_combination() -> None:
    assert set(EXPECTED) == set(itertools.product(STATES, STATES))


@pytest.mark.parametrize(("here", "other"), sorted(EXPECTED))
@pytest.mark.parametrize("current", ["primary", "standby"])
def test_arbiter_table(here: str, other: str, current: str) -> None:
    """Every state of the current target x every state of the other, with either as current."""
    other_name = "standby" if current == "primary" else "primary"
    views = {current: view(current, here), other_name: view(other_name, other)}
    expected = EXPECTED[(here, other)]
    decision = arbitrate(views["primary"], views["standby"], current)
    # argument order never matters: only which cluster clients point at now
    assert arbitrate(views["standby"], views["primary"], current) == decision
    assert decision.previous == current
    if expected == "M":
        assert decision.target == other_name and decision.switched
        assert decision.reason.endswith(f"{other_name} is active and alive: switching to {other_name}")
    else:
        assert decision.target == current and not decision.switched, decision.reason
    assert decision.split_brain == (expected == "B")
    if expected == "B":
        assert decision.reason.startswith(f"split brain: both {current} and {other_name} say active")


@pytest.mark.parametrize(
    ("here", "other", "reason"),
    [
        ("SA", "AA", "primary says standby and standby is active and alive: switching to standby"),
        ("X", "AA", "primary is unreachable (connection refused) and standby is active and alive"),
        ("AD", "SA", "primary is dead (no /tandem/alive), but standby says standby: staying on primary"),
        ("X", "AD", "primary is unreachable (connection refused), but standby says active but is dead"),
        ("SD", "X", "primary is dead (no /tandem/alive), but standby is unreachable: staying on primary"),
        ("X", "UA", "but standby's role is unknown (not UTF-8 JSON): staying on primary"),
        ("AA", "SA", "primary is active and alive: staying"),
        ("UA", "AA", "primary is alive but its role is unknown (not UTF-8 JSON): staying"),
    ],
)
def test_arbiter_reasons_say_why(here: str, other: str, reason: str) -> None:
    decision = arbitrate(view("primary", here), view("standby", other), "primary")
    assert reason in decision.reason


def test_after_roles_reverse_the_rules_apply_the_other_way() -> None:
    moved = arbitrate(view("primary", "SD"), view("standby", "AA"), "primary")
    assert moved.target == "standby"
    # the old primary comes back fenced: clients stay on the new primary
    assert arbitrate(view("primary", "SA"), view("standby", "AA"), "standby").target == "standby"
    # the new primary fails and the old one is promoted back: clients follow
    back = arbitrate(view("primary", "AA"), view("standby", "X"), "standby")
    assert back.target == "primary" and back.switched


def test_current_target_must_be_in_the_pair() -> None:
    with pytest.raises(ValueError, match="neither 'primary' nor 'standby'"):
        arbitrate(view("primary", "AA"), view("standby", "SA"), "elsewhere")


# --------------------------------------------------------------------------- parsing at the edge


def test_views_from_znodes_never_raise_on_bad_data() -> None:
    good = ClusterRecord.new("primary", "active", 3).to_bytes()
    assert ClusterView.from_znodes("primary", good, True) == ClusterView("primary", "active", "alive", 3)
    for bad, problem in [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"name": "primary", "role": "leader", "epoch": 1, "updated": "2026-01-01T00:00:00Z"}', "'role'"),
        (b"", "not UTF-8 JSON"),
    ]:
        seen = ClusterView.from_znodes("primary", bad, False)
        assert (seen.role, seen.liveness, seen.epoch) == ("unknown", "dead", None)
        assert seen.problem is not None and problem in seen.problem
    missing = ClusterView.from_znodes("primary", None, True)
    assert (missing.role, missing.problem) == ("unknown", "/tandem/cluster is missing")


def test_a_record_of_another_cluster_is_unknown() -> None:
    other = ClusterRecord.new("standby", "active", 2).to_bytes()
    seen = ClusterView.from_znodes("primary", other, True)
    assert seen.role == "unknown"
    assert "names cluster 'standby', not 'primary'" in str(seen.problem)


def test_view_json_round_trip_and_invariants() -> None:
    for state in STATES:
        original = view("primary", state)
        assert ClusterView.from_json(json.loads(json.dumps(original.to_json()))) == original
    with pytest.raises(ValueError, match="unreachable cluster's role"):
        ClusterView("primary", "active", "unreachable")
    with pytest.raises(ValueError, match="role must be one of"):
        ClusterView("primary", "leader", "alive")  # type: ignore[arg-type]


def test_describe() -> None:
    assert view("standby", "AA", 3).describe() == "standby (active, alive, epoch 3)"
    assert view("primary", "X").describe() == "primary (unreachable: connection refused)"
    assert view("primary", "UD").describe() == "primary (unknown, dead: not UTF-8 JSON)"


# --------------------------------------------------------------------------- the watch


@pytest.mark.parametrize(
    ("primary", "standby", "watched", "kind", "new_watched", "reason"),
    [
        ("AA", "SA", "primary", "healthy", "primary", "primary is active and alive (epoch 4)"),
        ("AA", "X", "primary", "standby_lost", "primary", "its standby standby is unreachable"),
        ("AA", "SD", "primary", "standby_lost", "primary", "its standby standby is dead"),
        ("AA", "UA", "primary", "standby_lost", "primary", "standby has an unreadable record"),
        ("AD", "SA", "primary", "primary_failed", "primary", "primary, the active cluster, is dead"),
        ("X", "SA", "primary", "primary_failed", "primary", "primary, the active cluster, is unreachable"),
        ("UA", "SA", "primary", "primary_failed", "primary", "no longer says active: its role is unknown"),
        ("SA", "SA", "primary", "no_active", "primary", "no cluster says active"),
        ("X", "AA", "primary", "standby_lost", "standby", "standby is active, but its standby primary"),
        ("SA", "AA", "primary", "healthy", "standby", "standby is active and alive"),
        ("AA", "AA", "standby", "split_brain", "standby", "split brain: both primary (active, alive"),
        ("AD", "AA", "standby", "split_brain", "standby", "split brain"),
        ("X", "SA", None, "no_active", None, "no cluster says active"),
        ("SA", "SD", "primary", "no_active", "primary", "no cluster says active"),
    ],
)
def test_assess_pair(
    primary: str, standby: str, watched: str | None, kind: str, new_watched: str | None, reason: str
) -> None:
    health = assess_pair(view("primary", primary), view("standby", standby), watched)
    assert (health.kind, health.watched) == (kind, new_watched)
    assert reason in health.reason
    assert health.alert == (kind != "healthy")
    assert PairHealth.from_json(health.to_json()) == health


def test_assess_keys_change_exactly_when_the_situation_does() -> None:
    def key(p: str, s: str, epoch: int = 4) -> str:
        return assess_pair(view("primary", p, epoch), view("standby", s, epoch), "primary").key

    # losing the standby is one situation (the pair has no disaster recovery), however it looks
    assert key("AA", "SA") != key("AA", "SD") == key("AA", "X") == key("AA", "UA")
    # a failure of the active cluster is one incident (one alert, one promotion asked), whether
    # it is seen dead, then unreachable, then with an unreadable record
    assert key("AD", "SA") == key("X", "SA") == key("UA", "SA")
    assert len({key("AA", "SA"), key("AD", "SA"), key("SA", "AA")}) == 3
    # a new promotion (epoch) is a new situation even with the same active cluster
    assert key("AA", "SA", 4) != key("AA", "SA", 5)


def test_advice_says_exactly_how_to_promote() -> None:
    views = (view("primary", "X"), view("standby", "SA"))
    health = assess_pair(*views, "primary")
    text = advice(health, views, "main", "tandem_promote__main")
    assert "standby is alive and can take over" in text
    assert "DAG tandem_promote__main" in text and "confirmation = standby" in text
    assert '"conf": {"cluster": "standby", "confirmation": "standby"}' in text
    assert "/api/v2/dags/tandem_promote__main/dagRuns" in text
    # a failed active cluster: the watch asked for the decision, and the alert says where to answer
    assert health.kind == "primary_failed" and 'Required Actions page (choose "Promote standby"' in text
    dead = (view("primary", "X"), view("standby", "SD"))
    assert "No cluster can be promoted now" in advice(assess_pair(*dead, "primary"), dead, "main", "d")
    both = (view("primary", "AA"), view("standby", "AA"))
    assert "promote it again" in advice(assess_pair(*both, "primary"), both, "main", "d")
    ok = (view("primary", "AA"), view("standby", "SA"))
    assert advice(assess_pair(*ok, "primary"), ok, "main", "d").startswith("Nothing to do")
    assert PromoteHow("main", "standby", "d").conf == {"cluster": "standby", "confirmation": "standby"}


# --------------------------------------------------------------------------- promotion checks


@pytest.mark.parametrize(
    ("cluster", "confirmation", "reason"),
    [
        ("standby", "standby", None),
        ("standby", "Standby", "does not repeat the cluster name 'standby' exactly"),
        ("standby", "standby ", "does not repeat the cluster name 'standby' exactly"),
        ("standby", "", "the confirmation '' does not repeat"),
        ("elsewhere", "elsewhere", "'elsewhere' is not a cluster of this pair (primary, standby)"),
    ],
)
def test_promotion_request_checks(cluster: str, confirmation: str, reason: str | None) -> None:
    refusal = check_request(cluster, confirmation, ("primary", "standby"))
    if reason is None:
        assert refusal is None
    else:
        assert refusal is not None and reason in refusal and "nothing was changed" in refusal


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("AA", None),
        ("SA", None),
        ("AD", "standby is dead (no /tandem/alive)"),
        ("SD", "standby is dead (no /tandem/alive)"),
        ("X", "standby is unreachable (connection refused)"),
        ("UA", "standby's record is unreadable (not UTF-8 JSON)"),
        ("UD", "standby is dead"),
    ],
)
def test_promotion_target_checks(state: str, reason: str | None) -> None:
    refusal = check_target(view("standby", state))
    assert refusal == reason if reason is None else (refusal is not None and reason in refusal)


# --------------------------------------------------------------------------- the agent's hysteresis


def run_agent_checks(checks: str, fail_after: int = 2, recover_after: int = 2) -> str:
    """Feed a string of checks (+ healthy, - unhealthy); return the actions as letters."""
    letters = {"take": "T", "drop": "D", "keep": "k", "stay_down": "s"}
    state = AgentState()
    out = ""
    for check in checks:
        state, action, _reason = next_step(state, Health(check == "+", "x"), fail_after, recover_after)
        out += letters[action]
        assert state.held == (action in ("take", "keep"))
    return out


@pytest.mark.parametrize(
    ("checks", "actions"),
    [
        ("+++", "Tkk"),  # the first good check takes the node at once
        ("-+++", "ssTk"),  # a cluster that starts sick must first be steadily healthy
        ("+-+", "Tkk"),  # one bad answer is not a death
        ("+--", "TkD"),  # two in a row are
        ("+--+", "TkDs"),  # one good answer is not a recovery...
        ("+--++", "TkDsT"),  # ...two in a row are
        ("+--+-++", "TkDsssT"),  # a flapping cluster stays down until it is steadily healthy
    ],
)
def test_agent_hysteresis(checks: str, actions: str) -> None:
    assert run_agent_checks(checks) == actions


def test_agent_thresholds_are_configurable_and_reasons_say_why() -> None:
    assert run_agent_checks("+-", fail_after=1) == "TD"
    assert run_agent_checks("+-+++", fail_after=1, recover_after=3) == "TDssT"
    state, action, reason = next_step(
        AgentState(held=True, started=True, failures=1), Health(False, "webhdfs down")
    )
    assert (action, state.held) == ("drop", False)
    assert reason == "unhealthy (webhdfs down): dropping /tandem/alive"
    _state, action, reason = next_step(AgentState(started=True), Health(True, "webhdfs answers"))
    assert (action, reason) == ("stay_down", "healthy (webhdfs answers), 1/2 checks before taking")


# --------------------------------------------------------------------------- the drill's verdict


def drill_result(**changes: object) -> dict[str, object]:
    result: dict[str, object] = {
        "detect_s": 2.5,
        "alert_s": 6.0,
        "switch_s": 0.02,
        "rpo_s": 10.0,
        "writes_at_risk_on_old_primary": 20,
        "split_brain_switched": False,
        "writes_acknowledged": 190,
        "writes_acknowledged_after_switch": 170,
        "writes_lost_after_switch": 0,
        "reverse_restore_point": {"point": "2026-11-21T10:00:00Z", "source": "standby", "target": "primary"},
        "roles": {"primary": "standby", "standby": "active"},
        "seconds": 90.0,
    }
    result.update(changes)
    return result


@pytest.mark.parametrize(
    ("changes", "missed"),
    [
        ({}, []),
        ({"detect_s": 5.0}, ["detection under 5 s"]),
        ({"switch_s": 3.1}, ["clients switched under 3 s after promotion"]),
        ({"writes_lost_after_switch": 1}, ["no acknowledged write lost after the switch"]),
        ({"split_brain_switched": True}, ["no switch during the split brain"]),
    ],
)
def test_drill_targets(changes: dict[str, object], missed: list[str]) -> None:
    met = targets_met(drill_result(**changes))
    assert [target for target, ok in met.items() if not ok] == missed
    text = summary({**drill_result(**changes), "targets_met": met})
    for target in missed:
        assert f"[MISSED] {target}" in text
    assert "clients switched 0.02 s after the promotion" in summary({**drill_result(), "targets_met": met})
