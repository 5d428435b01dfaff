"""One namespace over several primaries: what HDFS refuses or answers in one namespace, the
gateway refuses or answers the same way although each primary holds only its own part of a
directory, and the standby never ends up holding what no primary acknowledged.

Found by an adversarial read (requests compared with the cluster's own answers). Uses the
session's embedded clusters; everything is under this module's plan root (/gwns)."""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from hdfs import InsecureClient, TokenClient

from tandem_dev.embedded.manager import RunningClusters
from tests.integration.gateway_support import (
    Gateway,
    GatewayPlan,
    create,
    gateway,
    payload,
    read_or_none,
    replay,
    superusers,
    write_plan,
)

pytestmark = [pytest.mark.integration]

PLAN = "gwns"
CLUSTERS = ("primary", "primary2", "standby")


@pytest.fixture(scope="module")
def plan(embedded: RunningClusters, tmp_path_factory: pytest.TempPathFactory) -> GatewayPlan:
    return write_plan(tmp_path_factory.mktemp(PLAN), embedded.home, PLAN)


@pytest.fixture(scope="module")
def gw(plan: GatewayPlan) -> Iterator[Gateway]:
    with gateway(plan, "--no-worker") as running:
        yield running


@pytest.fixture(scope="module")
def direct(embedded: RunningClusters) -> dict[str, InsecureClient]:
    return superusers({name: embedded[name].webhdfs_url for name in CLUSTERS})


@pytest.fixture
def base(request: pytest.FixtureRequest) -> str:
    return f"/{PLAN}/{request.node.name.replace('[', '-').replace(']', '')}"


def call(gw: Gateway, plan: GatewayPlan, method: str, path: str, op: str, **params: Any) -> requests.Response:
    return requests.request(
        method,
        f"{gw.webhdfs}{path}",
        params={"op": op, "delegation": plan.token, **params},
        timeout=60,
        allow_redirects=False,
    )


def routed(plan: GatewayPlan, parent: str, primary: str, stem: str = "d") -> str:
    """A name under ``parent`` the plan routes to ``primary``."""
    return next(p for i in range(10_000) if plan.primary_of(p := f"{parent}/{stem}{i:03d}") == primary)


def kind(client: InsecureClient, path: str) -> str | None:
    found = client.status(path, strict=False)
    return None if found is None else str(found["type"])


def kinds(plan: GatewayPlan, direct: dict[str, InsecureClient], path: str) -> dict[str, str | None]:
    held = {name: kind(direct[name], path) for name in plan.primaries}
    held["standby"] = kind(direct["standby"], plan.standby_path(path))
    return held


def refused(answer: requests.Response, exception: str) -> None:
    assert answer.status_code == 403, (answer.status_code, answer.text)
    assert answer.json()["RemoteException"]["exception"] == exception, answer.text


def test_a_non_recursive_delete_refuses_a_directory_whose_files_are_on_another_primary(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    folder = routed(plan, base, "primary")
    assert call(gw, plan, "PUT", folder, "MKDIRS").status_code == 200
    inside = plan.names_on(folder, "primary2", 1)[0]
    assert create(gw.webhdfs, plan.token, inside, b"keep me").status_code == 201
    refused(call(gw, plan, "DELETE", folder, "DELETE", recursive="false"), "PathIsNotEmptyDirectoryException")
    assert kinds(plan, direct, folder) == {
        "primary": "DIRECTORY",
        "primary2": "DIRECTORY",
        "standby": "DIRECTORY",
    }
    assert read_or_none(direct["primary2"], inside) == b"keep me"
    assert read_or_none(direct["standby"], plan.standby_path(inside)) == b"keep me"


def test_mkdirs_refuses_a_file_held_by_another_primary_at_or_above_the_path(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    file = plan.names_on(base, "primary", 1)[0]
    assert create(gw.webhdfs, plan.token, file, b"a file").status_code == 201
    refused(call(gw, plan, "PUT", file, "MKDIRS"), "FileAlreadyExistsException")
    refused(call(gw, plan, "PUT", f"{file}/child", "MKDIRS"), "ParentNotDirectoryException")
    assert kinds(plan, direct, file) == {"primary": "FILE", "primary2": None, "standby": "FILE"}


def test_a_create_without_overwrite_refuses_what_another_primary_holds(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """A directory made on primary2 by a child's write, then a file of its name routed to
    primary; a file on primary, then a child under it routed to primary2."""
    folder = routed(plan, base, "primary")
    assert create(gw.webhdfs, plan.token, plan.names_on(folder, "primary2", 1)[0], b"in").status_code == 201
    refused(create(gw.webhdfs, plan.token, folder, b"named like the directory"), "FileAlreadyExistsException")
    assert kinds(plan, direct, folder) == {"primary": None, "primary2": "DIRECTORY", "standby": "DIRECTORY"}

    file = routed(plan, base, "primary", stem="f")
    assert create(gw.webhdfs, plan.token, file, b"I am a file").status_code == 201
    child = plan.names_on(file, "primary2", 1)[0]
    refused(create(gw.webhdfs, plan.token, child, b"child"), "ParentNotDirectoryException")
    assert kinds(plan, direct, file) == {"primary": "FILE", "primary2": None, "standby": "FILE"}


def test_a_create_over_a_directory_is_refused_as_already_existing(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    folder = routed(plan, base, "primary")
    assert call(gw, plan, "PUT", folder, "MKDIRS").status_code == 200
    refused(create(gw.webhdfs, plan.token, folder, b"x", overwrite=True), "FileAlreadyExistsException")
    assert kinds(plan, direct, folder)["primary"] == "DIRECTORY"


def race(steps: list[str], bodies: list[bytes]) -> list[requests.Response]:
    """Both data steps sent at once."""
    barrier = threading.Barrier(len(steps))

    def send(step: str, body: bytes) -> requests.Response:
        barrier.wait()
        return requests.put(step, data=body, timeout=120)

    with ThreadPoolExecutor(len(steps)) as pool:
        return list(pool.map(send, steps, bodies))


def test_two_creates_without_overwrite_race_and_the_standby_holds_the_winner(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """Both bodies reach the sides; the primary's RENAME decides. Before the fix the standby's
    copy was published beside the primary's and could hold the loser's bytes."""
    for n in range(4):
        path = f"{base}/r{n}.bin"
        bodies = [payload(f"{path}-{i}", 1 << 20) for i in range(2)]
        steps = [call(gw, plan, "PUT", path, "CREATE", overwrite="false").headers["Location"] for _ in bodies]
        answers = race(steps, bodies)
        won = [a for a in answers if a.status_code == 201]
        lost = [a for a in answers if a.status_code != 201]
        assert len(won) == 1 and len(lost) == 1, [(a.status_code, a.text[:200]) for a in answers]
        refused(lost[0], "FileAlreadyExistsException")
        winner = read_or_none(direct[plan.primary_of(path)], path)
        assert winner in bodies
        assert won[0].headers["X-Tandem-Backup"] == "done"
        assert read_or_none(direct["standby"], plan.standby_path(path)) == winner, f"round {n}"
    hidden = [s for s in direct["standby"].list(plan.standby_path(base)) if s.startswith(".tandem-gw.")]
    assert hidden == []


def test_delete_answers_true_whichever_primary_held_the_file(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    client = TokenClient(gw.url, plan.token)
    for primary in plan.primaries:
        file = plan.names_on(base, primary, 1)[0]
        assert create(gw.webhdfs, plan.token, file, b"x").status_code == 201
        assert client.delete(file) is True, primary
        assert direct[primary].status(file, strict=False) is None
    assert client.delete(f"{base}/never-written") is False


def test_a_file_renamed_onto_a_directory_moves_into_it_on_its_new_names_primary(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    src, folder, moved = next(
        (s, d, f"{d}/s{i:03d}.bin")
        for i in range(10_000)
        if (plan.primary_of(s := f"{base}/src/s{i:03d}.bin"), plan.primary_of(d := f"{base}/dst{i:03d}"))
        == ("primary", "primary")
        and plan.primary_of(f"{d}/s{i:03d}.bin") == "primary2"
    )
    data = payload(src, 5_000)
    assert create(gw.webhdfs, plan.token, src, data).status_code == 201
    assert call(gw, plan, "PUT", folder, "MKDIRS").status_code == 200
    answer = call(gw, plan, "PUT", src, "RENAME", destination=folder)
    assert answer.json() == {"boolean": True}, answer.text
    assert read_or_none(direct["primary2"], moved) == data
    assert read_or_none(direct["primary"], moved) is None
    assert read_or_none(direct["standby"], plan.standby_path(moved)) == data
    assert create(gw.webhdfs, plan.token, moved, b"newer", overwrite=True).status_code == 201
    assert [read_or_none(direct[p], moved) for p in plan.primaries] == [None, b"newer"]


def test_reads_and_attributes_answer_as_the_cluster_does(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], embedded: RunningClusters, base: str
) -> None:
    file = f"{base}/f.bin"
    assert create(gw.webhdfs, plan.token, file, payload(file, 4_000)).status_code == 201
    holder = plan.primary_of(file)
    cluster = f"{embedded[holder].webhdfs_url.rstrip('/')}/webhdfs/v1{file}"

    listed = call(gw, plan, "GET", file, "LISTSTATUS").json()["FileStatuses"]["FileStatus"]
    theirs = requests.get(cluster, params={"op": "LISTSTATUS", "user.name": "web"}, timeout=30).json()
    assert [(s["pathSuffix"], s["type"], s["length"]) for s in listed] == [
        (s["pathSuffix"], s["type"], s["length"]) for s in theirs["FileStatuses"]["FileStatus"]
    ]

    checksum = call(gw, plan, "GET", file, "GETFILECHECKSUM")
    assert checksum.status_code == 200, checksum.text
    assert checksum.json() == {"FileChecksum": direct[holder].checksum(file)}

    assert call(gw, plan, "PUT", file, "SETREPLICATION", replication="2").json() == {"boolean": True}
    assert direct[holder].status(file)["replication"] == 2
    assert call(gw, plan, "PUT", base, "SETREPLICATION", replication="2").json() == {"boolean": False}

    relative = call(gw, plan, "PUT", file, "RENAME", destination="elsewhere.bin")
    assert relative.status_code == 400, relative.text
    assert relative.json()["RemoteException"]["exception"] == "IllegalArgumentException"


def test_an_append_reaches_a_file_placed_by_an_explicit_id(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """The id's primary holds the file; a client that appends without the id header (fsspec,
    the hdfs package) still appends there, and the standby follows."""
    path = plan.names_on(base, "primary", 1)[0]
    ident = next(i for n in range(1000) if plan.routes.primary_of(i := f"id-{n}") == "primary2")
    step = requests.put(
        f"{gw.webhdfs}{path}",
        params={"op": "CREATE", "delegation": plan.token},
        headers={"X-Tandem-Data-Id": ident},
        allow_redirects=False,
        timeout=30,
    )
    made = requests.put(
        step.headers["Location"], data=b"head|", headers={"X-Tandem-Data-Id": ident}, timeout=30
    )
    assert (made.status_code, made.headers["X-Tandem-Primary"]) == (201, "primary2")
    TokenClient(gw.url, plan.token).write(path, data=b"tail", append=True)
    assert read_or_none(direct["primary2"], path) == b"head|tail"
    assert read_or_none(direct["primary"], path) is None
    assert read_or_none(direct["standby"], plan.standby_path(path)) == b"head|tail"


def test_replay_reports_a_mark_it_cannot_apply_and_replays_the_others(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """A write with overwrite over a name that is a directory on another primary is not checked
    (that would cost every write a request per primary): its backup meets the standby's
    directory. Replay reports it, keeps its mark, and backs up everything else."""
    folder = routed(plan, base, "primary")
    assert create(gw.webhdfs, plan.token, plan.names_on(folder, "primary2", 1)[0], b"in").status_code == 201
    direct["primary"].write(folder, data=b"a file where primary2 has a directory")  # beside the gateway
    from tandem.gateway.marks import PENDING_BACKUP, Mark

    fine = f"{base}/fine.bin"
    direct[plan.primary_of(fine)].write(fine, data=b"fine")
    for path in (folder, fine):
        mark = Mark.new_compact("write", (path,), plan.primary_of(path), "web")
        direct[plan.primary_of(path)].makedirs(f"/.tandem/gateway/{plan.name}/{PENDING_BACKUP}/{mark.id}")
    report = replay(plan)
    assert report["returncode"] == 1, report
    assert len(report["problems"]) == 1 and folder in report["problems"][0], report["problems"]
    assert read_or_none(direct["standby"], plan.standby_path(fine)) == b"fine"
    left = direct["primary"].list(f"/.tandem/gateway/{plan.name}/{PENDING_BACKUP}")
    assert len(left) == 1 and "~" in left[0]
    direct["primary"].delete(folder)  # a person settles the conflict; the next replay finishes
    assert replay(plan)["returncode"] == 0


def test_an_append_the_primary_refuses_leaves_the_standby_to_replay(
    gw: Gateway, plan: GatewayPlan, embedded: RunningClusters, direct: dict[str, InsecureClient], base: str
) -> None:
    """The standby takes an APPEND that the primary refuses (its directory is over its space
    quota there): the standby is then ahead, so the write's mark stays and replay puts the
    primary's file back on it."""
    path = f"{base}/quota/full.bin"
    assert create(gw.webhdfs, plan.token, path, b"head|").status_code == 201
    holder = plan.primary_of(path)
    quota = requests.put(
        f"{embedded[holder].webhdfs_url.rstrip('/')}/webhdfs/v1{base}/quota",
        params={"op": "SETQUOTA", "storagespacequota": "1", "user.name": "hdfs"},
        timeout=30,
    )
    assert quota.status_code == 200, quota.text
    step = call(gw, plan, "POST", path, "APPEND")
    answer = requests.post(step.headers["Location"], data=b"tail", timeout=30)
    assert answer.status_code == 403 and "QuotaExceeded" in answer.text, answer.text
    assert read_or_none(direct[holder], path) == b"head|"
    assert replay(plan)["returncode"] == 0
    assert read_or_none(direct["standby"], plan.standby_path(path)) == b"head|"


def test_a_batched_listing_pages_through_the_merged_directory(
    gw: Gateway, plan: GatewayPlan, base: str
) -> None:
    """LISTSTATUS_BATCH (what Hadoop's own WebHdfsFileSystem lists large directories with)
    answers the directory merged over the primaries, after ``startAfter``."""
    names = [*plan.names_on(base, "primary", 3), *plan.names_on(base, "primary2", 3)]
    for name in names:
        assert create(gw.webhdfs, plan.token, name, b"x").status_code == 201
    expected = sorted(name.rsplit("/", 1)[1] for name in names)

    def page(**after: str) -> tuple[list[str], int]:
        doc = call(gw, plan, "GET", base, "LISTSTATUS_BATCH", **after).json()["DirectoryListing"]
        return [s["pathSuffix"] for s in doc["partialListing"]["FileStatuses"]["FileStatus"]], doc[
            "remainingEntries"
        ]

    assert page() == (expected, 0)
    assert page(startAfter=expected[2]) == (expected[3:], 0)
    assert page(startAfter=expected[-1]) == ([], 0)


def test_a_rename_onto_an_existing_file_answers_false_and_changes_nothing(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """WebHDFS answers ``{"boolean": false}`` (200); curl and fsspec callers read the boolean."""
    first, second = f"{base}/a.bin", plan.names_on(base, "primary2", 1)[0]
    for name in (first, second):
        assert create(gw.webhdfs, plan.token, name, name.encode()).status_code == 201
    answer = call(gw, plan, "PUT", first, "RENAME", destination=second)
    assert (answer.status_code, answer.json()) == (200, {"boolean": False}), answer.text
    for name in (first, second):
        assert read_or_none(direct[plan.primary_of(name)], name) == name.encode()
    itself = call(gw, plan, "PUT", first, "RENAME", destination=first)
    assert (itself.status_code, itself.json()) == (200, {"boolean": True}), itself.text


def test_a_name_at_hdfs_limit_is_written_through_and_one_beyond_it_refused(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """HDFS takes names up to 255 UTF-8 bytes (``max-component-length``): the gateway's temporary
    name beside such a file stays within the limit, and a longer name gets HDFS's own refusal."""
    path = f"{base}/{'é' * 125}.bin"  # 254 bytes
    assert create(gw.webhdfs, plan.token, path, b"at the limit").status_code == 201
    assert read_or_none(direct[plan.primary_of(path)], path) == b"at the limit"
    assert read_or_none(direct["standby"], plan.standby_path(path)) == b"at the limit"
    answer = create(gw.webhdfs, plan.token, f"{base}/{'n' * 256}", b"beyond it")
    refused(answer, "PathComponentTooLongException")
    held = [e for h in plan.primaries if kind(direct[h], base) for e in direct[h].list(base)]
    assert held == [posixpath.basename(path)]
