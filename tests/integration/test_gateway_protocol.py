"""The write gateway spoken to as an application would: unmodified WebHDFS clients (the ``hdfs``
package's TokenClient, fsspec's ``webhdfs`` with ``token=``, raw HTTP as curl sends it), and what
lands on the clusters checked directly, bypassing the gateway.

Uses the session's embedded clusters (primary, primary2, standby); everything this module writes
is under its own plan's root (/gwp) and target (/backup/gwp), so other tests never collide.
"""

from __future__ import annotations

import http.client
import posixpath
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec
import pytest
import requests
from hdfs import HdfsError, InsecureClient, TokenClient

from tandem_dev.embedded.manager import RunningClusters
from tests.integration.gateway_support import (
    Gateway,
    GatewayPlan,
    create,
    gateway,
    payload,
    read_or_none,
    superusers,
    write_plan,
)

pytestmark = [pytest.mark.integration]

PLAN = "gwp"
CLUSTERS = ("primary", "primary2", "standby")
ADVICE_AT = "1MiB"


@pytest.fixture(scope="module")
def plan(embedded: RunningClusters, tmp_path_factory: pytest.TempPathFactory) -> GatewayPlan:
    return write_plan(
        tmp_path_factory.mktemp(PLAN), embedded.home, PLAN, extra={"large_write_advice": ADVICE_AT}
    )


@pytest.fixture(scope="module")
def gw(plan: GatewayPlan) -> Iterator[Gateway]:
    with gateway(plan) as running:
        yield running


@pytest.fixture(scope="module")
def direct(embedded: RunningClusters) -> dict[str, InsecureClient]:
    return superusers({name: embedded[name].webhdfs_url for name in CLUSTERS})


@pytest.fixture
def client(gw: Gateway, plan: GatewayPlan) -> TokenClient:
    return TokenClient(gw.url, plan.token, timeout=60)


@pytest.fixture
def base(request: pytest.FixtureRequest) -> str:
    """A directory per test (deterministic, so routing is too)."""
    return f"/{PLAN}/{request.node.name.replace('[', '-').replace(']', '')}"


def other(plan: GatewayPlan, primary: str) -> str:
    return next(p for p in plan.primaries if p != primary)


def assert_placed(plan: GatewayPlan, direct: dict[str, InsecureClient], path: str, data: bytes) -> None:
    """``path`` holds ``data`` on the primary the plan routes it to, nowhere else among the
    primaries, and byte for byte on the standby under the target root."""
    owner = plan.primary_of(path)
    assert read_or_none(direct[owner], path) == data, f"{path} on {owner}"
    assert direct[other(plan, owner)].status(path, strict=False) is None, f"{path} also on the other primary"
    assert read_or_none(direct[plan.standby], plan.standby_path(path)) == data, f"{path} on the standby"


def absent_everywhere(plan: GatewayPlan, direct: dict[str, InsecureClient], path: str) -> None:
    for name in plan.primaries:
        assert direct[name].status(path, strict=False) is None, f"{path} on {name}"
    assert direct[plan.standby].status(plan.standby_path(path), strict=False) is None, f"{path} on standby"


def remote_exception(response: requests.Response | Any) -> dict[str, Any]:
    doc = response.json()
    assert set(doc) == {"RemoteException"}, doc
    exc: dict[str, Any] = doc["RemoteException"]
    assert {"exception", "javaClassName", "message"} <= set(exc), exc
    return exc


def gw_url(gw: Gateway, path: str, op: str, token: str | None, **params: str) -> str:
    query = "&".join(
        f"{k}={v}" for k, v in {"op": op, **({"delegation": token} if token else {}), **params}.items()
    )
    return f"{gw.webhdfs}{path}?{query}"


# --------------------------------------------------------------------------- hdfs TokenClient


def test_token_client_write_read_status(
    client: TokenClient, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    files = {
        p: payload(p, 1000 + 37 * n)
        for n, p in enumerate(
            plan.names_on(base, "primary", 3) + plan.names_on(base, "primary2", 3, stem="g")
        )
    }
    for path, data in files.items():
        client.write(path, data)
    for path, data in files.items():
        with client.read(path) as reader:
            assert reader.read() == data
        st = client.status(path)
        assert st["type"] == "FILE" and st["length"] == len(data)
        # the token's user is the acting user on the clusters (doas)
        assert direct[plan.primary_of(path)].status(path)["owner"] == "web"
        assert_placed(plan, direct, path, data)
    # partial reads (offset/length) as the client sends them
    path, data = next(iter(files.items()))
    with client.read(path, offset=100, length=200) as reader:
        assert reader.read() == data[100:300]
    summary = client.content(base)
    assert summary["fileCount"] == len(files)
    assert summary["length"] == sum(len(d) for d in files.values())


def test_listing_merges_primaries(
    client: TokenClient, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    on_first = plan.names_on(base, "primary", 4)
    on_second = plan.names_on(base, "primary2", 4, stem="g")
    for path in on_first + on_second:
        client.write(path, payload(path, 64))
    listed = client.list(base)
    assert listed == sorted(posixpath.basename(p) for p in on_first + on_second)
    # each primary holds only its own: the listing really is a merge
    assert sorted(direct["primary"].list(base)) == sorted(posixpath.basename(p) for p in on_first)
    assert sorted(direct["primary2"].list(base)) == sorted(posixpath.basename(p) for p in on_second)
    # the standby holds all of them under the target root
    assert direct["standby"].list(plan.standby_path(base)) == listed
    statuses = dict(client.list(base, status=True))
    assert all(statuses[n]["type"] == "FILE" and statuses[n]["length"] == 64 for n in listed)


def test_upload_over_existing_uses_a_temp_name_and_lands_whole(
    client: TokenClient, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str, tmp_path: Path
) -> None:
    """hdfs.upload over an existing file writes ``<name>.temp-<micros>``, deletes the old file
    and renames the temporary one: all on the primary of the final name."""
    target = f"{base}/report.csv"
    first, second = payload("one", 300_000), payload("two", 700_001)
    local = tmp_path / "report.csv"
    local.write_bytes(first)
    assert client.upload(target, str(local)) == target
    assert_placed(plan, direct, target, first)
    local.write_bytes(second)
    assert client.upload(target, str(local), overwrite=True, chunk_size=65536) == target
    assert_placed(plan, direct, target, second)
    with client.read(target) as reader:
        assert reader.read() == second
    # no temporary name is left anywhere, visible or hidden
    for name in plan.primaries:
        if direct[name].status(base, strict=False) is not None:
            assert direct[name].list(base) == (["report.csv"] if name == plan.primary_of(target) else [])
    assert direct["standby"].list(plan.standby_path(base)) == ["report.csv"]
    assert client.list(base) == ["report.csv"]


def test_upload_directory_spreads_files(
    client: TokenClient, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str, tmp_path: Path
) -> None:
    local = tmp_path / "batch"
    local.mkdir()
    contents = {f"part-{i:03d}": payload(f"part-{i}", 5000 + i) for i in range(12)}
    for name, data in contents.items():
        (local / name).write_bytes(data)
    client.upload(base, str(local), n_threads=4)
    assert client.list(base) == sorted(contents)
    owners = Counter(plan.primary_of(f"{base}/{n}") for n in contents)
    assert len(owners) == 2, f"12 names all routed to one primary: {owners}"
    for name, data in contents.items():
        assert_placed(plan, direct, f"{base}/{name}", data)


def test_makedirs_rename_delete(
    client: TokenClient, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    client.makedirs(f"{base}/a/b")
    for name in CLUSTERS:
        where = f"{base}/a/b" if name != plan.standby else plan.standby_path(f"{base}/a/b")
        assert direct[name].status(where)["type"] == "DIRECTORY", name
    # a rename within one primary
    src = plan.names_on(f"{base}/a", "primary", 1, stem="src")[0]
    dst = plan.names_on(f"{base}/a", "primary", 1, stem="dst")[0]
    data = payload(src, 4321)
    client.write(src, data)
    client.rename(src, dst)
    absent_everywhere(plan, direct, src)
    assert_placed(plan, direct, dst, data)
    # a rename to a name another primary owns: the file moves there, whole
    far = plan.names_on(f"{base}/a", "primary2", 1, stem="far")[0]
    client.rename(dst, far)
    absent_everywhere(plan, direct, dst)
    assert_placed(plan, direct, far, data)
    with client.read(far) as reader:
        assert reader.read() == data
    # delete a file, then a tree
    client.delete(far)
    absent_everywhere(plan, direct, far)
    with pytest.raises(HdfsError):
        client.status(far)
    assert client.status(far, strict=False) is None
    assert client.delete(f"{base}/a", recursive=True)
    absent_everywhere(plan, direct, f"{base}/a")
    assert client.delete(f"{base}/never-there") is False


def test_directory_rename_that_would_strand_files_is_refused_and_changes_nothing(
    gw: Gateway, client: TokenClient, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """A directory's files stay where they were written when it is renamed; when some of their new
    names hash to another primary the gateway refuses, as the Router does for a HASH mount (a
    later write of such a name would land on its routed primary and orphan the old copy)."""
    src, dst = f"{base}/reports", f"{base}/archive"
    files = [*plan.names_on(src, "primary", 3, stem="r"), *plan.names_on(src, "primary2", 3, stem="q")]
    moved = [f"{dst}/{posixpath.basename(f)}" for f in files]
    assert any(plan.primary_of(m) != plan.primary_of(f) for f, m in zip(files, moved, strict=True))
    contents = {f: payload(f, 3000 + i) for i, f in enumerate(files)}
    for path, data in contents.items():
        client.write(path, data)
    with pytest.raises(HdfsError) as refused:
        client.rename(src, dst)
    assert "not allowed" in str(refused.value) and "routed" in str(refused.value)
    # nothing moved, anywhere: every file where it was, readable through the gateway
    for path, data in contents.items():
        assert_placed(plan, direct, path, data)
        with client.read(path) as reader:
            assert reader.read() == data
    absent_everywhere(plan, direct, dst)
    assert client.status(dst, strict=False) is None
    # raw HTTP sees Hadoop's RemoteException (IOException, 403)
    answer = requests.put(gw_url(gw, src, "RENAME", plan.token, destination=dst), timeout=30)
    assert answer.status_code == 403, answer.text
    assert remote_exception(answer)["exception"] == "IOException"
    # a directory without files renames (on every side), and so does each file, moving whole
    client.makedirs(f"{base}/empty/inner")
    client.rename(f"{base}/empty", f"{base}/renamed")
    absent_everywhere(plan, direct, f"{base}/empty")
    assert client.status(f"{base}/renamed/inner")["type"] == "DIRECTORY"
    client.makedirs(dst)
    for path, target in zip(files, moved, strict=True):
        client.rename(path, target)
        assert_placed(plan, direct, target, contents[path])
    assert client.list(dst) == sorted(posixpath.basename(m) for m in moved)


# --------------------------------------------------------------------------- fsspec webhdfs


@pytest.fixture
def fs(gw: Gateway, plan: GatewayPlan) -> Any:
    parts = urlsplit(gw.url)
    return fsspec.filesystem(
        "webhdfs", host=parts.hostname, port=parts.port, token=plan.token, skip_instance_cache=True
    )


def test_fsspec_large_write_ls_rm(
    fs: Any, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """open('wb') of ~10 MiB: CREATE of an empty file, then APPENDs of fsspec's 5 MiB blocks."""
    path = f"{base}/big.bin"
    data = payload(path, 10 * (1 << 20) + 12345)
    with fs.open(path, "wb") as out:
        for i in range(0, len(data), 1 << 20):
            out.write(data[i : i + (1 << 20)])
    assert_placed(plan, direct, path, data)
    assert fs.cat_file(path) == data
    assert fs.cat_file(path, start=5_000_000, end=5_000_100) == data[5_000_000:5_000_100]
    small = plan.names_on(base, other(plan, plan.primary_of(path)), 2, stem="s")
    for p in small:
        fs.pipe_file(p, payload(p, 10))
    assert fs.ls(base) == sorted([path, *small])
    info = fs.info(path)
    assert info["type"] == "file" and info["size"] == len(data)
    fs.rm(path)
    absent_everywhere(plan, direct, path)
    assert fs.ls(base) == sorted(small)
    with pytest.raises(FileNotFoundError):
        fs.info(path)


def test_fsspec_copy_through_a_temp_name(
    fs: Any, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """fsspec's cp_file writes ``<dir>/.tmp.<hex>`` (routed by the directory), then renames it
    to the final name: the result is on the final name's primary, whole, with no leftover."""
    src = f"{base}/in/source.bin"
    data = payload(src, 300_000)
    fs.pipe_file(src, data)
    finals = [
        plan.names_on(f"{base}/out", "primary", 1, stem="c")[0],
        plan.names_on(f"{base}/out", "primary2", 1, stem="d")[0],
    ]
    for final in finals:
        fs.cp_file(src, final)
        assert_placed(plan, direct, final, data)
    assert fs.ls(f"{base}/out") == sorted(finals)
    for name in plan.primaries:
        if direct[name].status(f"{base}/out", strict=False) is not None:
            assert all(not n.startswith(".tmp.") for n in direct[name].list(f"{base}/out")), name
    assert sorted(direct["standby"].list(plan.standby_path(f"{base}/out"))) == sorted(
        posixpath.basename(f) for f in finals
    )


# --------------------------------------------------------------------------- raw HTTP


def test_raw_create_redirect_then_data(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    path = f"{base}/curl.txt"
    data = payload(path, 2048)
    first = requests.put(gw_url(gw, path, "CREATE", plan.token), allow_redirects=False, timeout=30)
    assert first.status_code == 307, first.text
    location = first.headers["Location"]
    assert location.startswith(gw.url)
    absent_everywhere(plan, direct, path)  # nothing happens before the data step
    second = requests.put(location, data=data, timeout=30)
    assert second.status_code == 201, second.text
    assert second.headers["X-Tandem-Backup"] == "done"
    assert second.headers["X-Tandem-Primary"] == plan.primary_of(path)
    assert_placed(plan, direct, path, data)
    # APPEND the same way (POST, 307, POST)
    more = b"appended bytes"
    step = requests.post(gw_url(gw, path, "APPEND", plan.token), allow_redirects=False, timeout=30)
    assert step.status_code == 307, step.text
    done = requests.post(step.headers["Location"], data=more, timeout=30)
    assert done.status_code == 200, done.text
    assert done.headers["X-Tandem-Backup"] == "done"
    assert_placed(plan, direct, path, data + more)
    # OPEN with a Bearer header instead of delegation=
    got = requests.get(
        gw_url(gw, path, "OPEN", None), headers={"Authorization": f"Bearer {plan.token}"}, timeout=30
    )
    assert got.status_code == 200 and got.content == data + more


def test_raw_noredirect_answers_the_location_as_json(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    path = f"{base}/noredirect.txt"
    first = requests.put(
        gw_url(gw, path, "CREATE", plan.token, noredirect="true", overwrite="true"),
        allow_redirects=False,
        timeout=30,
    )
    assert first.status_code == 200, first.text
    location = first.json()["Location"]
    assert location.startswith(gw.url)
    data = payload(path, 999)
    second = requests.put(
        location, data=data, headers={"Content-Type": "application/octet-stream"}, timeout=30
    )
    assert second.status_code == 201, second.text
    assert_placed(plan, direct, path, data)


def test_hadoop_copying_name_lands_on_the_final_names_primary(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """`hadoop fs -put` writes ``<name>._COPYING_`` and renames it: one primary throughout."""
    for final in (plan.names_on(base, "primary", 1)[0], plan.names_on(base, "primary2", 1, stem="g")[0]):
        temp = f"{final}._COPYING_"
        data = payload(final, 77_777)
        got = create(gw.webhdfs, plan.token, temp, data)
        assert got.status_code == 201, got.text
        assert got.headers["X-Tandem-Primary"] == plan.primary_of(final)
        moved = requests.put(gw_url(gw, temp, "RENAME", plan.token, destination=final), timeout=30)
        assert moved.status_code == 200 and moved.json() == {"boolean": True}, moved.text
        assert_placed(plan, direct, final, data)
        absent_everywhere(plan, direct, temp)


def test_explicit_data_id_header_routes_by_the_id(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    """An id the client names (``X-Tandem-Data-Id``) decides the primary; reads find it later
    without the header."""
    data_id = next(f"user-{i}" for i in range(100) if plan.routes.primary_of(f"user-{i}") == "primary2")
    paths = plan.names_on(base, "primary", 3)  # their own names would go to the other primary
    for path in paths:
        step = requests.put(gw_url(gw, path, "CREATE", plan.token), allow_redirects=False, timeout=30)
        got = requests.put(
            step.headers["Location"],
            data=payload(path, 500),
            headers={"X-Tandem-Data-Id": data_id},
            timeout=30,
        )
        assert got.status_code == 201, got.text
        assert got.headers["X-Tandem-Primary"] == "primary2"
    for path in paths:
        assert read_or_none(direct["primary2"], path) == payload(path, 500)
        assert direct["primary"].status(path, strict=False) is None
        assert read_or_none(direct["standby"], plan.standby_path(path)) == payload(path, 500)
        with TokenClient(gw.url, plan.token).read(path) as reader:
            assert reader.read() == payload(path, 500)


def test_large_sync_write_gets_the_advice_to_go_async(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    small = create(gw.webhdfs, plan.token, f"{base}/small.bin", b"s" * 1000)
    assert small.status_code == 201 and "X-Tandem-Advice" not in small.headers
    # known from Content-Length
    big = f"{base}/big.bin"
    sized = create(gw.webhdfs, plan.token, big, payload(big, (3 << 20) // 2))
    assert sized.status_code == 201, sized.text
    assert "async" in sized.headers.get("X-Tandem-Advice", ""), dict(sized.headers)
    # or once a chunked body passes the threshold
    chunked = f"{base}/chunked.bin"
    data = payload(chunked, (3 << 20) // 2)
    streamed = create(
        gw.webhdfs, plan.token, chunked, iter([data[i : i + 65536] for i in range(0, len(data), 65536)])
    )
    assert streamed.status_code == 201, streamed.text
    assert "async" in streamed.headers.get("X-Tandem-Advice", ""), dict(streamed.headers)
    assert_placed(plan, direct, big, payload(big, (3 << 20) // 2))
    assert_placed(plan, direct, chunked, data)


def test_attribute_changes_reach_the_standby(
    client: TokenClient, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    path = f"{base}/attrs.txt"
    client.write(path, b"attributes")
    client.set_permission(path, "600")
    client.set_times(path, modification_time=1_700_000_000_000, access_time=1_700_000_000_000)
    for side, where in ((plan.primary_of(path), path), (plan.standby, plan.standby_path(path))):
        st = direct[side].status(where)
        assert st["permission"] == "600", (side, st)
        assert st["modificationTime"] == 1_700_000_000_000, (side, st)
    assert client.status(path)["permission"] == "600"


# --------------------------------------------------------------------------- routing


def test_routing_is_even_and_deterministic(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    paths = [f"{base}/event-{i:04d}.json" for i in range(400)]
    local = threading.local()

    def put(path: str) -> tuple[str, str, str]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        step = session.put(gw_url(gw, path, "CREATE", plan.token), allow_redirects=False, timeout=60)
        assert step.status_code == 307, step.text
        done = session.put(step.headers["Location"], data=payload(path, 100 + len(path)), timeout=60)
        assert done.status_code == 201, done.text
        return path, done.headers["X-Tandem-Primary"], done.headers["X-Tandem-Backup"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(put, paths))
    assert {backup for _, _, backup in answers} == {"done"}
    # the gateway says it routed each path where the plan's bucket map puts it
    assert [(p, plan.primary_of(p)) for p, _, _ in answers] == [(p, primary) for p, primary, _ in answers]
    spread = Counter(primary for _, primary, _ in answers)
    for name in plan.primaries:
        assert 0.4 * len(paths) <= spread[name] <= 0.6 * len(paths), spread
    # and the clusters agree: each primary holds exactly its share, the standby all of them
    for name in plan.primaries:
        held = set(direct[name].list(base))
        assert held == {posixpath.basename(p) for p in paths if plan.primary_of(p) == name}, name
    assert set(direct["standby"].list(plan.standby_path(base))) == {posixpath.basename(p) for p in paths}

    def check(path: str) -> None:
        data = payload(path, 100 + len(path))
        assert read_or_none(direct[plan.primary_of(path)], path) == data, path
        assert read_or_none(direct[plan.standby], plan.standby_path(path)) == data, path

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, paths))
    # rewriting a path reaches the same primary again
    session = requests.Session()
    for path in paths[:10]:
        step = session.put(
            gw_url(gw, path, "CREATE", plan.token, overwrite="true"), allow_redirects=False, timeout=30
        )
        done = session.put(step.headers["Location"], data=b"again", timeout=30)
        assert done.status_code == 201 and done.headers["X-Tandem-Primary"] == plan.primary_of(path)
        assert_placed(plan, direct, path, b"again")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["anonymous", "wrong-token"])
def test_unauthenticated_requests_get_401_and_change_nothing(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str, token: str | None
) -> None:
    kept = f"{base}/kept.txt"
    TokenClient(gw.url, plan.token).write(kept, b"keep me")
    fresh = f"{base}/fresh.txt"
    attempts = [
        ("PUT", gw_url(gw, fresh, "CREATE", token)),
        ("PUT", gw_url(gw, fresh, "CREATE", token, data="true")),
        ("PUT", gw_url(gw, kept, "CREATE", token, overwrite="true", data="true")),
        ("POST", gw_url(gw, kept, "APPEND", token, data="true")),
        ("PUT", gw_url(gw, f"{base}/newdir", "MKDIRS", token)),
        ("DELETE", gw_url(gw, kept, "DELETE", token)),
        ("PUT", gw_url(gw, kept, "RENAME", token, destination=f"{base}/moved.txt")),
        ("PUT", gw_url(gw, kept, "SETPERMISSION", token, permission="777")),
        ("GET", gw_url(gw, kept, "OPEN", token)),
        ("GET", gw_url(gw, base, "LISTSTATUS", token)),
    ]
    for method, url in attempts:
        got = requests.request(method, url, data=b"intruder", allow_redirects=False, timeout=30)
        assert got.status_code == 401, (method, url, got.status_code, got.text)
        assert b"keep me" not in got.content
    if token:
        bearer = requests.put(
            gw_url(gw, fresh, "CREATE", None, data="true"),
            data=b"intruder",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert bearer.status_code == 401
    # the hdfs package sees an error too
    with pytest.raises(HdfsError):
        (TokenClient(gw.url, token) if token else InsecureClient(gw.url)).write(fresh, b"intruder")
    for path in (fresh, f"{base}/newdir", f"{base}/moved.txt"):
        absent_everywhere(plan, direct, path)
    assert_placed(plan, direct, kept, b"keep me")
    owner = plan.primary_of(kept)
    assert direct[owner].status(kept)["permission"] != "777"


def test_path_outside_the_roots_is_refused(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient]
) -> None:
    outside = "/gwp-elsewhere/x.txt"
    for method, url in [
        ("PUT", gw_url(gw, outside, "CREATE", plan.token, data="true")),
        ("PUT", gw_url(gw, "/gwp-elsewhere", "MKDIRS", plan.token)),
        ("DELETE", gw_url(gw, "/backup", "DELETE", plan.token, recursive="true")),
    ]:
        got = requests.request(method, url, data=b"x", allow_redirects=False, timeout=30)
        assert got.status_code == 403, (method, url, got.status_code, got.text)
        exc = remote_exception(got)
        assert exc["exception"] == "AccessControlException", exc
        assert exc["javaClassName"] == "org.apache.hadoop.security.AccessControlException"
    with pytest.raises(HdfsError):
        TokenClient(gw.url, plan.token).write(outside, b"x")
    absent_everywhere(plan, direct, outside)
    assert direct["standby"].status("/backup", strict=False) is not None  # untouched


def _raw(gw: Gateway, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request target byte for byte (requests would normalise some of it)."""
    parts = urlsplit(gw.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request(method, target, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "escape",
    [
        "/gwp/%2E%2E/gwp-escaped/x.txt",
        "/gwp/%2e%2e/%2e%2e/gwp-escaped/x.txt",
        "/gwp/..%2Fgwp-escaped%2Fx.txt",
        "/gwp%2F..%2Fgwp-escaped%2Fx.txt",
        "/gwp/./../gwp-escaped/x.txt",
    ],
)
def test_path_escapes_are_refused(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], escape: str
) -> None:
    for method, op, extra in [
        ("PUT", "CREATE", "&data=true&overwrite=true"),
        ("PUT", "CREATE", ""),
        ("PUT", "MKDIRS", ""),
    ]:
        status, body = _raw(
            gw, method, f"/webhdfs/v1{escape}?op={op}&delegation={plan.token}{extra}", b"escaped!"
        )
        assert 400 <= status < 500, (escape, op, status, body)
        assert status != 307, (escape, op, body)
    for path in ("/gwp-escaped/x.txt", "/gwp-escaped", "/x.txt"):
        for name in plan.primaries:
            assert direct[name].status(path, strict=False) is None, (path, name)
        assert direct["standby"].status(path, strict=False) is None
        assert direct["standby"].status(f"/backup{path}", strict=False) is None
        assert direct["standby"].status(plan.standby_path(path), strict=False) is None


def test_create_without_overwrite_on_an_existing_file(
    gw: Gateway, plan: GatewayPlan, direct: dict[str, InsecureClient], base: str
) -> None:
    path = f"{base}/exists.txt"
    client = TokenClient(gw.url, plan.token)
    client.write(path, b"original")
    step = requests.put(gw_url(gw, path, "CREATE", plan.token), allow_redirects=False, timeout=30)
    # refused at the redirect or at the data step, either is Hadoop's behaviour
    got = step if step.status_code != 307 else requests.put(step.headers["Location"], data=b"x", timeout=30)
    assert got.status_code == 403, got.text
    exc = remote_exception(got)
    assert exc["exception"] == "FileAlreadyExistsException", exc
    with pytest.raises(HdfsError, match="already exists"):
        client.write(path, b"replacement")
    assert_placed(plan, direct, path, b"original")
    # overwrite=true replaces it on both sides
    client.write(path, b"replacement", overwrite=True)
    assert_placed(plan, direct, path, b"replacement")


def test_open_missing_file_is_404(gw: Gateway, plan: GatewayPlan, base: str) -> None:
    for op in ("OPEN", "GETFILESTATUS", "LISTSTATUS"):
        got = requests.get(gw_url(gw, f"{base}/missing.txt", op, plan.token), timeout=30)
        assert got.status_code == 404, (op, got.status_code, got.text)
        exc = remote_exception(got)
        assert exc["exception"] == "FileNotFoundException", exc
        assert exc["javaClassName"] == "java.io.FileNotFoundException"
    with pytest.raises(HdfsError), TokenClient(gw.url, plan.token).read(f"{base}/missing.txt") as reader:
        reader.read()


def test_bad_requests_get_hadoop_errors(gw: Gateway, plan: GatewayPlan, base: str) -> None:
    got = requests.put(gw_url(gw, f"{base}/x", "NOSUCHOP", plan.token), timeout=30)
    assert 400 <= got.status_code < 500
    assert remote_exception(got)["exception"] in ("IllegalArgumentException", "UnsupportedOperationException")
    got = requests.put(
        gw_url(gw, f"{base}/x", "CREATE", plan.token, overwrite="maybe", data="true"), timeout=30
    )
    assert got.status_code == 400
    assert remote_exception(got)["exception"] == "IllegalArgumentException"


# ------------------------------------------- answers checked against HttpFS and the NameNode


def _call(gw: Gateway, plan: GatewayPlan, method: str, path: str, **params: Any) -> requests.Response:
    params.setdefault("delegation", plan.token)
    return requests.request(method, f"{gw.webhdfs}{path}", params=params, timeout=60, allow_redirects=False)


@pytest.mark.parametrize("same_primary", [True, False], ids=["same-primary", "other-primary"])
def test_a_rename_into_a_directory_that_does_not_exist_answers_false(
    gw: Gateway, plan: GatewayPlan, client: TokenClient, base: str, same_primary: bool
) -> None:
    """HttpFS and the NameNode answer ``{"boolean": false}`` and change nothing (before: a 403
    when the new name stayed on its primary, and a moved file with a parent made for it when it
    went to another one; found by a conformance read)."""
    src = f"{base}/src.bin"
    client.write(src, b"data")
    want = plan.primary_of(src)
    dst = next(
        p for i in range(1000) if (plan.primary_of(p := f"{base}/nodir{i}/x.bin") == want) == same_primary
    )
    answer = _call(gw, plan, "PUT", src, op="RENAME", destination=dst)
    assert (answer.status_code, answer.json()) == (200, {"boolean": False}), answer.text
    assert client.status(src, strict=False) is not None
    assert client.status(posixpath.dirname(dst), strict=False) is None


def test_open_with_noredirect_answers_the_location_of_the_data(
    gw: Gateway, plan: GatewayPlan, client: TokenClient, base: str
) -> None:
    """HttpFS: ``noredirect=true`` answers ``{"Location": ...}`` (the data step), not the bytes."""
    client.write(f"{base}/f", b"hello")
    answer = _call(gw, plan, "GET", f"{base}/f", op="OPEN", noredirect="true")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert requests.get(answer.json()["Location"], timeout=60).content == b"hello"


def test_errors_carry_hadoops_classes_and_codes(
    gw: Gateway, plan: GatewayPlan, client: TokenClient, base: str
) -> None:
    """SETOWNER with neither owner nor group is the NameNode's IllegalArgumentException (400,
    was a 500); a refusal the primary sends keeps its real Java class and status (OPEN past the
    end is the NameNode's IOException, not an invented org.apache.hadoop.hdfs.protocol class)."""
    client.write(f"{base}/f", b"hello")
    empty = _call(gw, plan, "PUT", f"{base}/f", op="SETOWNER")
    assert empty.status_code == 400, empty.text
    assert empty.json()["RemoteException"]["javaClassName"] == "java.lang.IllegalArgumentException"
    past = _call(gw, plan, "GET", f"{base}/f", op="OPEN", offset="99")
    assert past.status_code == 403, past.text
    assert past.json()["RemoteException"]["javaClassName"] == "java.io.IOException"


@pytest.mark.parametrize(
    ("op", "extra", "key"),
    [
        ("GETACLSTATUS", {}, "AclStatus"),
        ("GETXATTRS", {"encoding": "text"}, "XAttrs"),
        ("LISTXATTRS", {}, "XAttrNames"),
        ("GETQUOTAUSAGE", {}, "QuotaUsage"),
        ("CHECKACCESS", {"fsaction": "r--"}, None),
        ("GETSERVERDEFAULTS", {}, "FsServerDefaults"),
    ],
)
def test_read_only_ops_are_answered_as_the_primary_answers_them(
    gw: Gateway,
    plan: GatewayPlan,
    client: TokenClient,
    base: str,
    op: str,
    extra: dict[str, str],
    key: str | None,
) -> None:
    """What HttpFS passes to its NameNode the gateway passes to the primary holding the path, as
    the token's user (before: 400 "not served")."""
    client.write(f"{base}/f", b"x")
    answer = _call(gw, plan, "GET", f"{base}/f", op=op, **extra)
    assert answer.status_code == 200, answer.text
    assert key is None or key in answer.json()


def test_a_delete_to_the_trash_stays_inside_the_plan(
    gw: Gateway, plan: GatewayPlan, client: TokenClient, direct: dict[str, InsecureClient], base: str
) -> None:
    """GETTRASHROOT names the plan's own trash (as an encryption zone has its own), so the hdfs
    package's ``delete(skip_trash=False)`` moves the file there, backed up like any other."""
    client.write(f"{base}/gone.bin", b"to the trash")
    assert client.delete(f"{base}/gone.bin", skip_trash=False)
    assert client.status(f"{base}/gone.bin", strict=False) is None
    trash = f"/{PLAN}/.Trash/web"
    found = [
        posixpath.join(where, name)
        for where, _dirs, files in client.walk(trash)
        for name in files
        if name == "gone.bin"
    ]
    assert len(found) == 1, found
    with client.read(found[0]) as reader:
        assert reader.read() == b"to the trash"
    assert read_or_none(direct["standby"], plan.standby_path(found[0])) == b"to the trash"


def test_getxattrs_with_several_names_answers_each(
    gw: Gateway, plan: GatewayPlan, client: TokenClient, direct: dict[str, InsecureClient], base: str
) -> None:
    """Hadoop's getXAttrs(path, names) repeats ``xattr.name``: every one reaches the primary."""
    client.write(f"{base}/f", b"x")
    holder = direct[plan.primary_of(f"{base}/f")]
    for name, value in (("user.a", "1"), ("user.b", "2")):
        done = requests.put(
            f"{holder.url}/webhdfs/v1{base}/f",
            params={
                "op": "SETXATTR",
                "xattr.name": name,
                "xattr.value": value,
                "flag": "CREATE",
                "user.name": "hdfs",
            },
            timeout=60,
        )
        assert done.status_code == 200, done.text
    answer = requests.get(
        f"{gw.webhdfs}{base}/f",
        params=[
            ("op", "GETXATTRS"),
            ("xattr.name", "user.a"),
            ("xattr.name", "user.b"),
            ("encoding", "text"),
            ("delegation", plan.token),
        ],
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert sorted(x["name"] for x in answer.json()["XAttrs"]) == ["user.a", "user.b"]
