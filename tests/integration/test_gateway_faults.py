"""The write gateway when things die: the standby, a primary, the gateway itself (SIGKILL
mid-upload), one of two gateways serving a plan. Nothing acknowledged may be lost; nothing
unacknowledged may be torn; replay brings every side back byte for byte.

Clusters are killed here, so the module starts clusters of its own (one set for all its tests,
each test with its own plan and root) and never touches the session's.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hdfs import InsecureClient, TokenClient

from tandem_dev.embedded import manager
from tandem_dev.embedded.manager import RunningClusters
from tests.integration.gateway_support import (
    COMMAND_TIMEOUT_S,
    ROOT,
    TANDEM,
    Gateway,
    GatewayPlan,
    create,
    gateway,
    payload,
    read_or_none,
    replay,
    served_status,
    status,
    superusers,
    wait_for,
    write_plan,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gateway_faults")]

CLUSTERS = ("primary", "primary2", "standby")
HIDDEN_TEMP = ".tandem-gw."


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningClusters]:
    home = tmp_path_factory.mktemp("gateway-faults") / "home"
    try:
        topology = manager.up(home=home)
    except Exception:
        print(manager.log_tails(home))
        raise
    try:
        yield topology
    finally:
        manager.down(home)


@pytest.fixture(autouse=True)
def clusters_back(faults: RunningClusters) -> Iterator[None]:
    """Whatever a test kills comes back before the next one runs."""
    yield
    for name, kinds in manager.probe(faults).items():
        if not kinds["webhdfs"] or not kinds["zookeeper"]:
            with contextlib.suppress(Exception):
                manager.kill_cluster(faults.home, name)
            manager.restart_cluster(faults.home, name)


@pytest.fixture
def direct(faults: RunningClusters) -> dict[str, InsecureClient]:
    return superusers({name: faults[name].webhdfs_url for name in CLUSTERS})


def on_primary(plan: GatewayPlan, direct: dict[str, InsecureClient], path: str) -> bytes | None:
    return read_or_none(direct[plan.primary_of(path)], path)


def on_standby(plan: GatewayPlan, direct: dict[str, InsecureClient], path: str) -> bytes | None:
    return read_or_none(direct[plan.standby], plan.standby_path(path))


def assert_both_sides(plan: GatewayPlan, direct: dict[str, InsecureClient], files: dict[str, bytes]) -> None:
    for path, data in files.items():
        assert on_primary(plan, direct, path) == data, f"{path} on {plan.primary_of(path)}"
        assert on_standby(plan, direct, path) == data, f"{path} on the standby"


def assert_whole_or_absent(
    plan: GatewayPlan, direct: dict[str, InsecureClient], path: str, data: bytes
) -> None:
    """An unacknowledged write: missing, or complete, on every side; never partial."""
    for name in plan.primaries:
        held = read_or_none(direct[name], path)
        assert held is None or held == data, f"{path} torn on {name}: {len(held)} of {len(data)} bytes"
    held = on_standby(plan, direct, path)
    assert held is None or held == data, f"{path} torn on the standby: {len(held)} of {len(data)} bytes"


def no_hidden_temps(plan: GatewayPlan, direct: dict[str, InsecureClient], directory: str) -> None:
    for name in plan.primaries:
        if direct[name].status(directory, strict=False) is not None:
            left = [n for n in direct[name].list(directory) if n.startswith(HIDDEN_TEMP)]
            assert not left, f"temporary files left on {name}: {left}"
    where = plan.standby_path(directory)
    if direct[plan.standby].status(where, strict=False) is not None:
        left = [n for n in direct[plan.standby].list(where) if n.startswith(HIDDEN_TEMP)]
        assert not left, f"temporary files left on the standby: {left}"


def pending_backup(doc: dict[str, Any], plan: GatewayPlan) -> int:
    return sum(
        doc["sides"][p]["pending_backup"]["count"] for p in plan.primaries if doc["sides"][p]["reachable"]
    )


def inflight(doc: dict[str, Any], primary: str) -> int:
    return int(doc["sides"][primary]["inflight"]["count"])


def assert_healthy(plan: GatewayPlan) -> dict[str, Any]:
    doc = status(plan)
    assert doc["returncode"] == 0, doc
    sides = doc["sides"]
    for name in plan.primaries:
        assert sides[name]["reachable"], (name, sides)
        assert sides[name]["pending_backup"]["count"] == 0, (name, "pending_backup", sides[name])
        assert sides[name]["inflight"]["count"] == 0, (name, "inflight", sides[name])
    assert sides[plan.standby]["reachable"], sides
    for name in plan.primaries:
        assert sides[plan.standby][f"pending_store_{name}"]["count"] == 0, sides[plan.standby]
    assert doc["degraded"] is False, doc
    return doc


def acked(response: requests.Response) -> str:
    """The backup state of a 201, failing with the response when it is anything else."""
    assert response.status_code == 201, (response.status_code, response.text)
    return str(response.headers["X-Tandem-Backup"])


def read_through(gw: Gateway, plan: GatewayPlan, path: str) -> bytes:
    with TokenClient(gw.url, plan.token, timeout=60).read(path) as reader:
        data: bytes = reader.read()
    return data


class SlowBody:
    """A request body that sends ``size`` bytes in chunks, stopping after ``pause_at`` bytes
    until :meth:`resume` (so a test can kill something while the upload is mid-way)."""

    def __init__(self, data: bytes, pause_at: int, chunk: int = 256 * 1024) -> None:
        self.data, self.pause_at, self.chunk = data, pause_at, chunk
        self.paused = threading.Event()
        self._resume = threading.Event()
        self.sent = 0

    def resume(self) -> None:
        self._resume.set()

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), self.chunk):
            if start >= self.pause_at and not self._resume.is_set():
                self.paused.set()
                self._resume.wait(60)
            block = self.data[start : start + self.chunk]
            self.sent += len(block)
            yield block


class Upload(threading.Thread):
    """One CREATE with a :class:`SlowBody`, in a thread; ``response`` or ``error`` after join."""

    def __init__(self, webhdfs: str, token: str, path: str, body: SlowBody) -> None:
        super().__init__(daemon=True)
        self.webhdfs, self.token, self.path, self.body = webhdfs, token, path, body
        self.response: requests.Response | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.response = create(self.webhdfs, self.token, self.path, iter(self.body), timeout=120)
        except BaseException as exc:
            self.error = exc
        finally:
            self.body.paused.set()  # never leave the test waiting on a body that was not read


# --------------------------------------------------------------------------- the standby down


def test_sync_with_the_standby_down(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, faults.home, "gwfs")
    base = "/gwfs/data"
    with gateway(plan, "--no-worker") as gw:
        before = {p: payload(p, 20_000) for p in (f"{base}/before-{i}.bin" for i in range(4))}
        for path, data in before.items():
            assert acked(create(gw.webhdfs, plan.token, path, data)) == "done"
        assert_both_sides(plan, direct, before)

        # a write under way when the standby dies
        streamed = f"{base}/midstream.bin"
        streamed_data = payload(streamed, 6 << 20)
        body = SlowBody(streamed_data, pause_at=3 << 20)
        upload = Upload(gw.webhdfs, plan.token, streamed, body)
        upload.start()
        assert body.paused.wait(30)
        manager.kill_cluster(faults.home, "standby")
        body.resume()
        upload.join(120)
        assert upload.error is None, upload.error
        assert upload.response is not None
        assert acked(upload.response) == "pending"

        during = {
            p: payload(p, 30_000 + i) for i, p in enumerate(f"{base}/during-{i}.bin" for i in range(10))
        }
        for path, data in during.items():
            got = create(gw.webhdfs, plan.token, path, data)
            assert acked(got) == "pending", path
            assert got.headers["X-Tandem-Primary"] == plan.primary_of(path)
        written = {**before, streamed: streamed_data, **during}
        # the primaries hold every acknowledged write, and the gateway serves them
        for path, data in written.items():
            assert on_primary(plan, direct, path) == data, path
            assert read_through(gw, plan, path) == data, path

        doc = status(plan)
        assert doc["degraded"] is True, doc
        assert doc["sides"][plan.standby]["reachable"] is False, doc
        assert pending_backup(doc, plan) == len(during) + 1, doc

        manager.restart_cluster(faults.home, "standby")
        report = replay(plan)
        assert report["returncode"] == 0, report
        assert report["problems"] == [], report
        assert report["files"] >= len(during) + 1, report
        assert_both_sides(plan, direct, written)
        no_hidden_temps(plan, direct, base)
        assert_healthy(plan)

        # the same gateway writes through to both sides again once the standby answers
        again = f"{base}/after.bin"
        assert (
            wait_for(
                "a write acknowledged as done after the standby came back",
                lambda: acked(create(gw.webhdfs, plan.token, again, b"after", overwrite=True)) == "done",
                timeout=30,
                every=0.5,
            )
            is True
        )
        assert_both_sides(plan, direct, {again: b"after"})


# --------------------------------------------------------------------------- a primary down


def test_sync_with_a_primary_down(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, faults.home, "gwfp")
    base = "/gwfp/data"
    down, up = "primary2", "primary"
    with gateway(plan, "--no-worker") as gw:
        old = plan.names_on(base, down, 1, stem="old")[0]
        assert acked(create(gw.webhdfs, plan.token, old, b"before the outage")) == "done"
        # a done write drops its inflight mark just after the ACK: let it, before the power cut
        wait_for("the done write's mark dropped", lambda: inflight(served_status(gw, plan), down) == 0)

        manager.kill_cluster(faults.home, down)
        to_down = {p: payload(p, 50_000 + i) for i, p in enumerate(plan.names_on(base, down, 6))}
        to_up = {p: payload(p, 40_000 + i) for i, p in enumerate(plan.names_on(base, up, 6, stem="g"))}
        for path, data in to_down.items():
            got = create(gw.webhdfs, plan.token, path, data)
            assert acked(got) == "pending", path
            assert got.headers["X-Tandem-Primary"] == down
        for path, data in to_up.items():
            got = create(gw.webhdfs, plan.token, path, data)
            assert acked(got) == "done", path
            assert got.headers["X-Tandem-Primary"] == up
        # an overwrite of a file the dead primary holds: the standby takes the newer bytes
        newer = b"written during the outage"
        assert acked(create(gw.webhdfs, plan.token, old, newer, overwrite=True)) == "pending"
        to_down[old] = newer

        written = {**to_down, **to_up}
        for path, data in written.items():
            assert read_through(gw, plan, path) == data, path
            assert on_standby(plan, direct, path) == data, path
        listed = TokenClient(gw.url, plan.token).list(base)
        assert set(listed) == {posixpath.basename(p) for p in written}, listed
        # who may change an owner is the primary's to say: such a change waits for it
        refused = requests.put(
            f"{gw.webhdfs}{old}",
            params={"op": "SETOWNER", "owner": "root", "group": "root", "delegation": plan.token},
            timeout=30,
        )
        assert refused.status_code == 503, refused.text

        doc = status(plan)
        assert doc["degraded"] is True, doc
        assert doc["sides"][down]["reachable"] is False, doc
        assert doc["sides"][plan.standby][f"pending_store_{down}"]["count"] == len(to_down), doc

        manager.restart_cluster(faults.home, down)
        report = replay(plan)
        assert report["returncode"] == 0, report
        assert report["problems"] == [], report
        # written back to the primary that owns them, byte for byte, and nowhere else, as the
        # token's user who wrote them (not as the gateway's own login, which the standby saw)
        for path, data in to_down.items():
            assert read_or_none(direct[down], path) == data, path
            assert direct[up].status(path, strict=False) is None, path
            assert direct[down].status(path)["owner"] == "web", path
        assert direct[down].status(old)["owner"] != "root"
        assert_both_sides(plan, direct, written)
        no_hidden_temps(plan, direct, base)
        assert_healthy(plan)
        for path, data in written.items():
            assert read_through(gw, plan, path) == data, path


def test_a_write_cut_by_its_primary_dying_is_replayed_and_the_plan_heals(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    """The primary dies while a write streams to it (its inflight mark already on it): the
    standby takes the write whole (pending-store); after restart and replay the primary holds
    it, and nothing is left pending anywhere."""
    plan = write_plan(tmp_path, faults.home, "gwfc")
    base = "/gwfc/data"
    down = "primary2"
    with gateway(plan, "--no-worker") as gw:
        streamed = plan.names_on(base, down, 1, stem="midstream")[0]
        data = payload(streamed, 6 << 20)
        body = SlowBody(data, pause_at=3 << 20)
        upload = Upload(gw.webhdfs, plan.token, streamed, body)
        upload.start()
        assert body.paused.wait(30)
        wait_for(
            "the write's inflight mark on its primary", lambda: inflight(served_status(gw, plan), down) == 1
        )
        manager.kill_cluster(faults.home, down)
        body.resume()
        upload.join(120)
        assert upload.error is None, upload.error
        assert upload.response is not None
        assert acked(upload.response) == "pending"
        assert upload.response.headers["X-Tandem-Primary"] == down
        assert read_through(gw, plan, streamed) == data
        assert on_standby(plan, direct, streamed) == data

        manager.restart_cluster(faults.home, down)
        report = replay(plan)
        assert report["returncode"] == 0 and report["problems"] == [], report
        assert read_or_none(direct[down], streamed) == data
        assert on_standby(plan, direct, streamed) == data
        no_hidden_temps(plan, direct, base)
        assert_healthy(plan)


def test_a_gateway_without_worker_writes_to_a_recovered_primary_again(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    """``--no-worker`` leaves replay to the DAG (here: `tandem gateway replay`). Once that has
    written the standby's data back, the same gateway must route the primary's writes to it
    again, not to the standby as pending-store forever."""
    plan = write_plan(tmp_path, faults.home, "gwfr")
    base = "/gwfr/data"
    down = "primary2"
    with gateway(plan, "--no-worker") as gw:
        manager.kill_cluster(faults.home, down)
        during = plan.names_on(base, down, 1, stem="during")[0]
        assert acked(create(gw.webhdfs, plan.token, during, b"during")) == "pending"
        manager.restart_cluster(faults.home, down)
        report = replay(plan)
        assert report["returncode"] == 0 and report["problems"] == [], report
        assert read_or_none(direct[down], during) == b"during"

        fresh = plan.names_on(base, down, 1, stem="fresh")[0]
        wait_for(
            f"a write to {down} acknowledged as done after its replay",
            lambda: acked(create(gw.webhdfs, plan.token, fresh, b"fresh", overwrite=True)) == "done",
            timeout=15,
            every=0.5,
        )
        assert read_or_none(direct[down], fresh) == b"fresh"
        assert on_standby(plan, direct, fresh) == b"fresh"
        assert served_status(gw, plan)["degraded"] is False


# --------------------------------------------------------------------------- async


def test_async_backs_up_after_the_interval_and_retries(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, faults.home, "gwfa", mode="async", interval="1s")
    base = "/gwfa/data"
    with gateway(plan) as gw:
        files = {p: payload(p, 25_000 + i) for i, p in enumerate(f"{base}/a-{i:02d}.bin" for i in range(10))}
        for path, data in files.items():
            got = create(gw.webhdfs, plan.token, path, data)
            assert acked(got) == "pending", path
            # acknowledged on the primary's ACK: the primary holds it already
            assert on_primary(plan, direct, path) == data, path
        wait_for(
            "the gateway's worker to back up every async write",
            lambda: all(on_standby(plan, direct, p) == d for p, d in files.items()),
            timeout=30,
            every=0.25,
        )
        wait_for("no pending backups", lambda: pending_backup(served_status(gw, plan), plan) == 0, timeout=30)

        # the standby down: writes are still acknowledged, and backed up once it answers again
        manager.kill_cluster(faults.home, "standby")
        late = {p: payload(p, 15_000 + i) for i, p in enumerate(f"{base}/late-{i:02d}.bin" for i in range(5))}
        for path, data in late.items():
            assert acked(create(gw.webhdfs, plan.token, path, data)) == "pending", path
            assert on_primary(plan, direct, path) == data, path
        acked_at = time.monotonic()

        def late_pending() -> dict[str, Any] | None:
            # the worker has tried (and failed) to back them up by now: their interval is over
            doc = served_status(gw, plan)
            return doc if pending_backup(doc, plan) == len(late) and time.monotonic() > acked_at + 2 else None

        doc = wait_for("the late writes pending past their interval", late_pending, timeout=30, every=0.5)
        assert doc["degraded"] is True, doc
        manager.restart_cluster(faults.home, "standby")
        wait_for(
            "the worker to retry and back up the late writes",
            lambda: all(on_standby(plan, direct, p) == d for p, d in late.items()),
            timeout=60,
            every=0.25,
        )
        assert_both_sides(plan, direct, {**files, **late})
        wait_for("a healthy plan", lambda: served_status(gw, plan)["degraded"] is False, timeout=30)
        assert_healthy(plan)


# --------------------------------------------------------------------------- the gateway killed


class Writer(threading.Thread):
    """Writes small files through one gateway until stopped or refused; records what was
    acknowledged and what was attempted without an acknowledgement."""

    def __init__(self, gw: Gateway, plan: GatewayPlan, prefix: str, size: int = 64 * 1024) -> None:
        super().__init__(daemon=True)
        self.gw, self.plan, self.prefix, self.size = gw, plan, prefix, size
        self.acked: dict[str, bytes] = {}
        self.unacked: dict[str, bytes] = {}
        self.stop = threading.Event()
        self.failed: str | None = None
        self.progress = threading.Condition()

    def wait_acked(self, count: int, timeout: float = 60) -> None:
        with self.progress:
            ok = self.progress.wait_for(lambda: len(self.acked) >= count or not self.is_alive(), timeout)
        assert ok and len(self.acked) >= count, (len(self.acked), self.failed)

    def run(self) -> None:
        session = requests.Session()
        i = 0
        while not self.stop.is_set():
            path = f"{self.prefix}-{i:04d}.bin"
            data = payload(path, self.size)
            try:
                got = create(self.gw.webhdfs, self.plan.token, path, data, session=session, timeout=30)
            except requests.RequestException as exc:
                self.unacked[path] = data
                self.failed = f"{type(exc).__name__}: {exc}"
                break
            if got.status_code != 201:
                self.unacked[path] = data
                self.failed = f"{got.status_code}: {got.text}"
                break
            with self.progress:
                self.acked[path] = data
                self.progress.notify_all()
            i += 1
        with self.progress:
            self.progress.notify_all()


def test_gateway_killed_mid_upload(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, faults.home, "gwfk")
    base = "/gwfk/data"
    big = f"{base}/big.bin"
    big_data = payload(big, 24 << 20)
    with gateway(plan, "--no-worker") as gw:
        first = {p: payload(p, 10_000 + i) for i, p in enumerate(f"{base}/first-{i}.bin" for i in range(6))}
        for path, data in first.items():
            assert acked(create(gw.webhdfs, plan.token, path, data)) == "done", path
        writer = Writer(gw, plan, f"{base}/racing")
        writer.start()
        body = SlowBody(big_data, pause_at=8 << 20)
        upload = Upload(gw.webhdfs, plan.token, big, body)
        upload.start()
        assert body.paused.wait(30)
        writer.wait_acked(5)
        gw.kill()
        body.resume()
        upload.join(60)
        writer.stop.set()
        writer.join(60)
    assert upload.response is None or upload.response.status_code != 201, "acknowledged after SIGKILL?"
    assert body.sent < len(big_data) or upload.error is not None

    acknowledged = {**first, **writer.acked}
    # every acknowledged write is on its primary at once (sync: and on the standby)
    for path, data in acknowledged.items():
        assert on_primary(plan, direct, path) == data, path
    with gateway(plan, "--no-worker") as again:
        # the dead write left its mark with the data, where any gateway finds it
        doc = served_status(again, plan)
        assert doc["sides"][plan.primary_of(big)]["inflight"]["count"] >= 1, doc
        # a new gateway serves what the dead one acknowledged
        listed = set(TokenClient(again.url, plan.token).list(base))
        assert {posixpath.basename(p) for p in acknowledged} <= listed
        for path in list(acknowledged)[:5]:
            assert read_through(again, plan, path) == acknowledged[path]

        report = replay(plan, "--inflight-grace", "0")
        assert report["returncode"] == 0, report
        assert report["problems"] == [], report
        assert_both_sides(plan, direct, acknowledged)
        assert_whole_or_absent(plan, direct, big, big_data)
        for path, data in writer.unacked.items():
            assert_whole_or_absent(plan, direct, path, data)
        no_hidden_temps(plan, direct, base)
        assert_healthy(plan)


def test_two_gateways_one_killed(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, faults.home, "gwf2")
    base = "/gwf2/data"
    with gateway(plan, "--no-worker") as a, gateway(plan, "--no-worker") as b:
        wa, wb = Writer(a, plan, f"{base}/a"), Writer(b, plan, f"{base}/b")
        wa.start()
        wb.start()
        wa.wait_acked(15)
        wb.wait_acked(15)
        a.kill()
        wa.join(60)
        assert not wa.is_alive()
        assert wa.failed is not None, "the writer through the killed gateway saw no error"
        killed_at = len(wb.acked)
        wb.wait_acked(killed_at + 25)
        wb.stop.set()
        wb.join(60)
        assert wb.failed is None, wb.failed
        # the survivor serves everything acknowledged by either
        survivor = TokenClient(b.url, plan.token)
        listed = set(survivor.list(base))
        assert {posixpath.basename(p) for p in {**wa.acked, **wb.acked}} <= listed
        report = replay(plan, "--inflight-grace", "0")
        assert report["returncode"] == 0, report
        assert report["problems"] == [], report
        acknowledged = {**wa.acked, **wb.acked}
        assert_both_sides(plan, direct, acknowledged)
        for path, data in wa.unacked.items():
            assert_whole_or_absent(plan, direct, path, data)
        spread = {plan.primary_of(p) for p in acknowledged}
        assert spread == set(plan.primaries), spread
        no_hidden_temps(plan, direct, base)
        assert_healthy(plan)


# --------------------------------------------------------------------------- replay killed


def test_a_replay_killed_midway_is_finished_by_the_next(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    """``tandem gateway replay`` SIGKILLed once it has finished some marks and not others: the
    marks it had not finished stay, so the next replay copies what is missing, and nothing on
    either side is torn or left under a hidden temporary name (a replay copy's temporary name
    comes from its mark, so the next replay of the mark overwrites what a dead copy left)."""
    plan = write_plan(tmp_path, faults.home, "gwkr")
    base = "/gwkr/data"
    files = {p: payload(p, 1 << 20) for p in (f"{base}/f-{i:02d}.bin" for i in range(40))}
    manager.kill_cluster(faults.home, plan.standby)
    with gateway(plan, "--no-worker") as gw:
        for path, data in files.items():
            assert acked(create(gw.webhdfs, plan.token, path, data)) == "pending"
    manager.restart_cluster(faults.home, plan.standby)
    queues = {p: f"/.tandem/gateway/{plan.name}/pending-backup" for p in plan.primaries}

    def marks_left() -> int:
        return sum(
            len(direct[p].list(q)) if direct[p].status(q, strict=False) else 0 for p, q in queues.items()
        )

    assert marks_left() == len(files)
    first = subprocess.Popen(
        [*TANDEM, "gateway", "replay", plan.name, "--home", str(plan.home)],
        env=plan.env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(
        "the first replay to finish some marks",
        lambda: first.poll() is not None or marks_left() < len(files),
        timeout=COMMAND_TIMEOUT_S,
        every=0.005,
    )
    first.kill()
    first.wait()

    again = replay(plan)
    assert again["returncode"] == 0, again
    assert_both_sides(plan, direct, files)
    no_hidden_temps(plan, direct, base)
    assert_healthy(plan)


def test_writing_back_a_directory_never_deletes_what_the_primary_holds_pending(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    """An async write is on its primary only (pending backup) when that primary dies; a MKDIRS of
    its directory meanwhile goes to the standby with a pending-store mark. Writing that mark back
    must not make the primary's directory look like the standby's (where the file is not yet):
    the acknowledged file would be deleted from the only side that holds it."""
    plan = write_plan(tmp_path, faults.home, "gwfd", mode="async", interval="1h")
    base = "/gwfd/dir"
    down = "primary"
    path = plan.names_on(base, down, 1)[0]
    data = payload(path, 30_000)
    with gateway(plan, "--no-worker") as gw:
        assert acked(create(gw.webhdfs, plan.token, path, data)) == "pending"
        assert on_primary(plan, direct, path) == data and on_standby(plan, direct, path) is None
        manager.kill_cluster(faults.home, down)
        done = requests.put(
            f"{gw.webhdfs}{base}", params={"op": "MKDIRS", "delegation": plan.token}, timeout=60
        )
        assert done.status_code == 200 and done.json() == {"boolean": True}, done.text
        assert status(plan)["sides"][plan.standby][f"pending_store_{down}"]["count"] == 1
    manager.restart_cluster(faults.home, down)
    report = replay(plan)
    assert report["returncode"] == 0 and report["deleted"] == 0, report
    assert_both_sides(plan, direct, {path: data})
    assert_healthy(plan)


def test_private_data_held_for_a_dead_primary_is_sealed_and_goes_back_in_the_clear(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    """A private file written while its primary is down waits on the standby sealed (the
    standby never holds it in the clear); replay writes it back to the primary as written."""
    from tandem.gateway.crypto import MAGIC, MasterKey

    private = {"words": ["salary"], "key_conn_id": "tandem_gateway_key", "chunk": 4096}
    plan = write_plan(tmp_path, faults.home, "gwfx", extra={"private_data": private})
    plan.env["AIRFLOW_CONN_TANDEM_GATEWAY_KEY"] = json.dumps(
        {"conn_type": "generic", "password": MasterKey.generate()}
    )
    down = "primary2"
    [path] = plan.names_on("/gwfx/data", down, 1, stem="pay")
    data = b"salary of Ana: 100\n" + payload(path, 10_000).hex().encode()
    with gateway(plan, "--no-worker") as gw:
        manager.kill_cluster(faults.home, down)
        assert acked(create(gw.webhdfs, plan.token, path, data)) == "pending"
        held = on_standby(plan, direct, path)
        assert held is not None and held.startswith(MAGIC) and data[:16] not in held
        assert read_through(gw, plan, path) == data  # reads through the gateway are plain
    manager.restart_cluster(faults.home, down)
    report = replay(plan)
    assert report["returncode"] == 0 and report["problems"] == [], report
    assert read_or_none(direct[down], path) == data  # back on its primary as written
    assert on_standby(plan, direct, path) == held  # and still sealed on the standby
    assert_healthy(plan)


def test_a_primary_down_while_the_target_is_full_evicts_nothing_blind(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    """Room must be made while a primary does not answer: its pending marks are unknown, so no
    backup may be evicted (one might be the only copy of its data); the write stays pending,
    whole on its primary. Once the primary is back, replay evicts the oldest and completes it."""
    import os

    nas = tmp_path / "nas"
    nas.mkdir()
    size = 20_000
    target = {"uri": f"file://{nas}", "root": "/backup", "capacity": size * 3 + size // 2}
    plan = write_plan(tmp_path, faults.home, "gwfe", extra={"target": target, "space": {"evict": "oldest"}})
    down, up = "primary2", "primary"
    held_dir = nas / "backup" / "gwfe" / "data"
    old = plan.names_on("/gwfe/data", up, 3, stem="old")
    with gateway(plan, "--no-worker") as gw:
        for age, path in enumerate(reversed(old), start=1):
            assert acked(create(gw.webhdfs, plan.token, path, payload(path, size))) == "done"
            then = time.time() - age * 86_400
            os.utime(held_dir / posixpath.basename(path), (then, then))
        manager.kill_cluster(faults.home, down)
        [new] = plan.names_on("/gwfe/data", up, 1, stem="new")
        assert acked(create(gw.webhdfs, plan.token, new, payload(new, size))) == "pending"
        assert sorted(p.name for p in held_dir.iterdir()) == sorted(posixpath.basename(p) for p in old)
        assert on_primary(plan, direct, new) == payload(new, size)
        assert status(plan)["evictions"] == 0
    manager.restart_cluster(faults.home, down)
    report = replay(plan)
    assert report["returncode"] == 0 and report["problems"] == [], report
    # old[0] was aged the most: it alone made room
    kept = sorted(posixpath.basename(p) for p in [*old[1:], new])
    assert sorted(p.name for p in held_dir.iterdir()) == kept
    assert (held_dir / posixpath.basename(new)).read_bytes() == payload(new, size)


# ------------------------------------------------------------- async mark moved before rename


def test_replay_waits_for_an_async_write_to_land_before_backing_it_up(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    """An async write moves its mark to pending-backup while it renames its data into place.
    Replay meeting the mark in that window (its temporary file still there) must not back up the
    path's older content and drop the mark: it waits, backs up the new content once the rename
    landed, and reconciles a write that died in the window like an inflight one."""
    from tandem.gateway.marks import PENDING_BACKUP, Mark

    plan = write_plan(tmp_path, faults.home, "gwmw", mode="async")
    path, died = "/gwmw/data/landing.bin", "/gwmw/data/died.bin"
    old = {p: payload(p + "old", 5_000) for p in (path, died)}
    with gateway(plan, "--no-worker") as gw:
        for p, data in old.items():
            assert acked(create(gw.webhdfs, plan.token, p, data)) == "pending"
    assert replay(plan)["returncode"] == 0
    assert_both_sides(plan, direct, old)

    marks = {}
    for p in (path, died):
        primary = direct[plan.primary_of(p)]
        mark = Mark.new_compact("write", (p,), plan.primary_of(p), "tandem", with_temp=True)
        assert mark.temp is not None
        primary.write(mark.temp, data=payload(p + "new", 6_000))
        primary.makedirs(f"/.tandem/gateway/{plan.name}/{PENDING_BACKUP}/{mark.id}")
        marks[p] = mark

    waiting = replay(plan)
    assert waiting["returncode"] == 0, waiting
    assert_both_sides(plan, direct, old)  # nothing older copied over, nothing dropped
    assert waiting["deferred"] == 2, waiting  # both marks stay, untouched
    queues = [status(plan)["sides"][name]["pending_backup"]["count"] for name in plan.primaries]
    assert sum(queues) == 2, queues

    landed = marks[path]
    assert landed.temp is not None
    direct[plan.primary_of(path)].delete(path)  # the write's RENAME with overwrite, in two steps
    direct[plan.primary_of(path)].rename(landed.temp, path)
    assert replay(plan)["returncode"] == 0
    assert on_standby(plan, direct, path) == payload(path + "new", 6_000)
    assert on_standby(plan, direct, died) == old[died]  # still waiting

    assert replay(plan, "--inflight-grace", "0")["returncode"] == 0
    assert_both_sides(plan, direct, {path: payload(path + "new", 6_000), died: old[died]})
    no_hidden_temps(plan, direct, "/gwmw/data")
    for name in plan.primaries:
        queue = f"/.tandem/gateway/{plan.name}/{PENDING_BACKUP}"
        left = direct[name].list(queue) if direct[name].status(queue, strict=False) else []
        assert left == [], (name, left)


def test_a_create_without_overwrite_never_replaces_a_file_whose_primary_is_down(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    """With the primary down, the standby answers for the name: a file it holds is refused as
    existing (sync); in async mode the standby may lack the newest writes, so the CREATE waits
    (503). Before the fix the write was taken as pending-store and replay wrote it back over
    the acknowledged file on both sides."""
    sync = write_plan(tmp_path / "sync", faults.home, "gwnos")
    lazy = write_plan(tmp_path / "async", faults.home, "gwnoa", mode="async", interval="1h")
    path_s = sync.names_on("/gwnos/x", "primary2", 1)[0]
    path_a, fresh = lazy.names_on("/gwnoa/x", "primary2", 2)
    with gateway(sync, "--no-worker") as gw_s, gateway(lazy, "--no-worker") as gw_a:
        assert acked(create(gw_s.webhdfs, sync.token, path_s, b"acknowledged")) == "done"
        assert acked(create(gw_a.webhdfs, lazy.token, path_a, b"acknowledged")) == "pending"
        manager.kill_cluster(faults.home, "primary2")
        again = create(gw_s.webhdfs, sync.token, path_s, b"must not replace")
        assert again.status_code == 403, again.text
        assert again.json()["RemoteException"]["exception"] == "FileAlreadyExistsException"
        waits = create(gw_a.webhdfs, lazy.token, path_a, b"must not replace")
        assert waits.status_code == 503, waits.text
        assert create(gw_a.webhdfs, lazy.token, fresh, b"new").status_code == 503
    manager.restart_cluster(faults.home, "primary2")
    for plan in (sync, lazy):
        assert replay(plan)["returncode"] == 0
    assert_both_sides(sync, direct, {path_s: b"acknowledged"})
    assert_both_sides(lazy, direct, {path_a: b"acknowledged"})


def test_a_directory_rename_waits_for_a_primary_that_may_hold_part_of_it(
    faults: RunningClusters, direct: dict[str, InsecureClient], tmp_path: Path
) -> None:
    """A directory routed to primary holds a file that lives on primary2; with primary2 down
    the rename is refused (503) and changes nothing: renamed on primary and the standby alone,
    primary2's file would stay under the old name with nothing to replay."""
    plan = write_plan(tmp_path, faults.home, "gwrdd")
    folder = next(p for i in range(1000) if plan.primary_of(p := f"/gwrdd/x/d{i:03d}") == "primary")
    inside = plan.names_on(folder, "primary2", 1)[0]
    with gateway(plan, "--no-worker") as gw:
        made = requests.put(
            f"{gw.webhdfs}{folder}", params={"op": "MKDIRS", "delegation": plan.token}, timeout=30
        )
        assert made.status_code == 200, made.text
        assert acked(create(gw.webhdfs, plan.token, inside, b"on primary2")) == "done"
        manager.kill_cluster(faults.home, "primary2")
        moved = requests.put(
            f"{gw.webhdfs}{folder}",
            params={"op": "RENAME", "destination": "/gwrdd/x/renamed", "delegation": plan.token},
            timeout=60,
        )
        assert moved.status_code == 503, moved.text
    manager.restart_cluster(faults.home, "primary2")
    assert replay(plan)["returncode"] == 0
    assert_both_sides(plan, direct, {inside: b"on primary2"})
    assert direct["primary"].status(folder, strict=False) is not None
    assert direct["standby"].status(plan.standby_path("/gwrdd/x/renamed"), strict=False) is None
