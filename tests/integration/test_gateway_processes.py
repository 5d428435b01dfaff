"""Two ways the gateway takes work off a write's path, checked from outside as a client sees them:

- ``tandem gateway serve --processes N``: N processes on one port, each with its own gateway
  (the gateway keeps no state of its own), all gone when the first one is killed;
- a CREATE's NameNode halves asked at its redirect (``tandem.prepared=<key>`` in the data step's
  Location): a key used for another write, used twice, or unknown, never changes what lands.

Uses the session's embedded clusters; everything is under this module's plan roots.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hdfs import InsecureClient, TokenClient

from tandem_dev.embedded.manager import RunningClusters
from tests.integration.gateway_support import (
    TANDEM,
    Gateway,
    GatewayPlan,
    gateway,
    payload,
    read_or_none,
    sha256,
    superusers,
    wait_for,
    write_plan,
)

pytestmark = [pytest.mark.integration]

CLUSTERS = ("primary", "primary2", "standby")
PREPARED = "tandem.prepared"


@pytest.fixture(scope="module")
def direct(embedded: RunningClusters) -> dict[str, InsecureClient]:
    return superusers({name: embedded[name].webhdfs_url for name in CLUSTERS})


OPS_TOKEN = "tok-gwpp-ops"


@pytest.fixture(scope="module")
def plan(embedded: RunningClusters, tmp_path_factory: pytest.TempPathFactory) -> GatewayPlan:
    """User ``web`` (the plan's token) and user ``ops`` (OPS_TOKEN) may both write."""
    made = write_plan(tmp_path_factory.mktemp("gwpp"), embedded.home, "gwpp")
    variable = "AIRFLOW_VAR_TANDEM_GATEWAY_TOKENS__GWPP"
    tokens = json.loads(made.env[variable])
    tokens[sha256(OPS_TOKEN.encode())] = {"user": "ops"}
    made.env[variable] = json.dumps(tokens)
    return made


@pytest.fixture(scope="module")
def gw(plan: GatewayPlan) -> Iterator[Gateway]:
    with gateway(plan) as running:
        yield running


def placed(plan: GatewayPlan, direct: dict[str, InsecureClient], path: str) -> tuple[bytes | None, ...]:
    """What the routed primary, the other primary and the standby hold for ``path``."""
    owner = plan.primary_of(path)
    other = next(p for p in plan.primaries if p != owner)
    return (
        read_or_none(direct[owner], path),
        read_or_none(direct[other], path),
        read_or_none(direct[plan.standby], plan.standby_path(path)),
    )


def leftovers(plan: GatewayPlan, direct: dict[str, InsecureClient], directory: str) -> list[str]:
    """Gateway temporary names under ``directory`` on any side, and inflight marks of the plan."""
    found = []
    for name in (*plan.primaries, plan.standby):
        where = plan.standby_path(directory) if name == plan.standby else directory
        if direct[name].status(where, strict=False) is not None:
            found += [f"{name}:{n}" for n in direct[name].list(where) if n.startswith(".tandem-gw.")]
        journal = f"/.tandem/gateway/{plan.name}/inflight"
        if name != plan.standby and direct[name].status(journal, strict=False) is not None:
            found += [f"{name}:inflight/{m}" for m in direct[name].list(journal)]
    return found


def redirect(gw: Gateway, plan: GatewayPlan, path: str, **params: str) -> str:
    query = {"op": "CREATE", "delegation": plan.token, "overwrite": "true", **params}
    step = requests.put(f"{gw.webhdfs}{path}", params=query, allow_redirects=False, timeout=30)
    assert step.status_code == 307, step.text
    return str(step.headers["Location"])


def with_key(location: str, key: str) -> str:
    """``location`` with its prepared key replaced by ``key``."""
    head, _, query = location.partition("?")
    kept = "&".join(p for p in query.split("&") if not p.startswith(f"{PREPARED}="))
    return f"{head}?{kept}&{PREPARED}={key}"


def key_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)[PREPARED][0]


def test_a_prepared_key_only_ever_serves_the_write_it_was_asked_for(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient]
) -> None:
    base = "/gwpp/keys"
    a, b, c = (f"{base}/{n}.bin" for n in ("a", "b", "c"))
    data = {p: payload(p, 3000 + i) for i, p in enumerate((a, b, c))}
    to_a = redirect(gw, plan, a)
    key = key_of(to_a)
    # the key of a's redirect, brought by the data step of another path: b lands whole where b belongs
    to_b = with_key(redirect(gw, plan, b), key)
    done = requests.put(to_b, data=data[b], timeout=30)
    assert done.status_code == 201, done.text
    assert placed(plan, direct, b) == (data[b], None, data[b])
    assert placed(plan, direct, a) == (None, None, None)
    # the key is spent: a's own data step still writes a, as any data step without a key does
    done = requests.put(to_a, data=data[a], timeout=30)
    assert done.status_code == 201, done.text
    assert placed(plan, direct, a) == (data[a], None, data[a])
    # a key asked with other parameters (overwrite=false) is not used for an overwrite
    to_c = redirect(gw, plan, c, overwrite="false")
    overwrite = to_c.replace("overwrite=false", "overwrite=true")
    assert overwrite != to_c
    done = requests.put(overwrite, data=data[c], timeout=30)
    assert done.status_code == 201, done.text
    assert placed(plan, direct, c) == (data[c], None, data[c])
    # another user's data step with web's key writes as that user, not as web
    e = f"{base}/e.bin"
    to_e = redirect(gw, plan, e).replace(f"delegation={plan.token}", f"delegation={OPS_TOKEN}")
    assert OPS_TOKEN in to_e
    done = requests.put(to_e, data=data[a], timeout=30)
    assert done.status_code == 201, done.text
    assert direct[plan.primary_of(e)].status(e)["owner"] == "ops"
    assert direct[plan.standby].status(plan.standby_path(e)) is not None
    # an unknown key, and a redirect never followed by its data, leave nothing behind
    done = requests.put(with_key(redirect(gw, plan, f"{base}/d.bin"), "no-such-key"), data=b"d", timeout=30)
    assert done.status_code == 201, done.text
    redirect(gw, plan, f"{base}/never.bin")
    assert placed(plan, direct, f"{base}/never.bin") == (None, None, None)
    wait_for("no temporary names or inflight marks", lambda: not leftovers(plan, direct, base))


def test_processes_share_the_port_and_all_stop_with_the_first(
    embedded: RunningClusters, tmp_path: Path, direct: dict[str, InsecureClient]
) -> None:
    plan = write_plan(tmp_path, embedded.home, "gwmp")
    with gateway(plan, "--processes", "2") as gw:
        seen: set[int] = set()

        def served_by() -> set[int]:
            # a new connection each time: the kernel spreads connections over the processes
            got = requests.get(f"{gw.url}/tandem/status", params={"delegation": plan.token}, timeout=30)
            got.raise_for_status()
            seen.add(int(got.json()["process"]))
            return seen if len(seen) == 2 else set()

        wait_for("both processes answering", served_by, timeout=60, every=0)
        assert gw.process.pid in seen
        (child,) = seen - {gw.process.pid}

        files = {f"/gwmp/d/f{i:03d}.bin": payload(f"gwmp{i}", 5000 + 17 * i) for i in range(40)}

        def write(item: tuple[str, bytes]) -> None:
            TokenClient(gw.url, plan.token, timeout=60).write(item[0], item[1], overwrite=True)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, files.items()))
        for path, data in files.items():
            assert placed(plan, direct, path) == (data, None, data), path

        gw.kill()  # SIGKILL the first process: the other goes with it
        wait_for(f"process {child} gone", lambda: not _alive(child))
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{gw.url}/tandem/status", params={"delegation": plan.token}, timeout=10)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_processes_must_be_at_least_one(plan: GatewayPlan) -> None:
    done = subprocess.run(
        [*TANDEM, "gateway", "serve", plan.name, "--home", str(plan.home), "--processes", "0"],
        env=plan.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "--processes must be at least 1" in done.stderr
