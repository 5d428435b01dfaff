"""The write gateway against writing straight to a primary, in sync and async mode, in one run.

    .venv/bin/python bench/gateway.py [--json] [--quick] [--threads N] [--rounds N] [--processes N]
                                      [--dir DIR]

On the embedded clusters (primary, primary2, standby), the same files, a set of large ones
(4 x 64 MiB) and a set of small ones (300 x 16 KiB; ``--quick``: 2 large, 100 small, one
round), are written by the same client code (the ``hdfs`` package's ``client.write(path,
data=..., overwrite=True)`` from ``--threads`` threads, 4 by default) three ways:

1. directly to the primary's WebHDFS (``InsecureClient``, user hdfs);
2. through a gateway serving plan ``benchsync`` (mode sync: both sides before the ACK);
3. through a gateway serving plan ``benchasync`` (mode async, interval 20 s).

Each gateway is ``tandem gateway serve PLAN --home HOME --processes N`` (1 by default), reached with
``TokenClient(url, token)`` as any application would. The three ways take turns for
``--rounds`` rounds (3 by default), and each set's time is its median over the rounds. Async mode
acknowledges on the primary's ACK and backs each write up ``interval`` later: the interval is
longer than a turn, so the async figures are the path an application waits on, and the backups
run after it (the bench waits for them before the next turn, and reports how long they took
after the last ACK and their rate). On this one machine they would otherwise share its two cores
with the turn being timed, which a gateway host, a primary and a standby do not.
Afterwards the gateways stop, ``tandem gateway replay`` runs for both plans, and every
acknowledged write is read back from its primary and from the standby: ``writes_lost`` counts
those missing or different.

Prints ``{"sync_over_direct", "async_over_direct", "p50_ms", "p99_ms", "writes_lost"}``:
throughput through the gateway over throughput direct (bytes/s of both sets together: their
bytes over the sum of their times), and the median and 99th percentile of one write's latency
through the sync gateway (both sets). Targets: async at least 0.8, sync at least 0.45 (close to
the cost of two writes), nothing lost. The human output adds the figures per set. Progress
goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml
from hdfs import Client, HdfsError, InsecureClient, TokenClient

from tandem.gateway.routing import BucketMap
from tandem_dev.embedded import manager

PROJECT = Path(__file__).resolve().parents[1]
KIB, MIB = 1024, 1024 * 1024
PRIMARIES = ["primary", "primary2"]
STANDBY = "standby"
BUCKETS = 1000
ASYNC_TARGET, SYNC_TARGET = 0.8, 0.45
START_TIMEOUT = 120.0
DRAIN_TIMEOUT = 300.0
# longer than an async turn (both sets), so that no backup starts while the turn is timed
ASYNC_INTERVAL = "20s"
USER = "bench"


@dataclass(frozen=True)
class Sizes:
    large_files: int
    large_size: int
    small_files: int
    small_size: int


FULL = Sizes(4, 64 * MIB, 300, 16 * KIB)
QUICK = Sizes(2, 64 * MIB, 100, 16 * KIB)


@dataclass(frozen=True)
class Plan:
    name: str
    mode: str
    root: str  # where the application writes
    target_root: str  # where the standby keeps it

    def document(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "plan": self.name,
            "description": f"bench/gateway.py, {self.mode} mode",
            "roots": [self.root],
            "primaries": PRIMARIES,
            "routing": {"hash": "md5", "buckets": BUCKETS},
            "target": {"cluster": STANDBY, "root": self.target_root},
            "mode": self.mode,
        }
        if self.mode == "async":
            doc["async"] = {"interval": ASYNC_INTERVAL}
        return doc


SYNC = Plan("benchsync", "sync", "/bench", "/backup/benchsync")
ASYNC = Plan("benchasync", "async", "/bench-async", "/backup/benchasync")


@dataclass(frozen=True)
class SetRun:
    """One set of files written once."""

    seconds: float
    latencies_ms: list[float]
    acknowledged: list[str]
    errors: list[str]


@dataclass
class Phase:
    """One way of writing (direct, gateway sync, gateway async), over every round."""

    label: str
    root: str
    set_bytes: dict[str, int]
    runs: dict[str, list[SetRun]] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    checked: int = 0
    pending_after: int = 0
    drains_s: list[float] = field(default_factory=list)
    backup_rates: list[float] = field(default_factory=list)
    replayed: dict[str, object] = field(default_factory=dict)

    def seconds(self, name: str) -> float:
        """The median time of one set over the rounds."""
        return statistics.median(r.seconds for r in self.runs[name])

    def mb_per_s(self, name: str) -> float:
        return self.set_bytes[name] / self.seconds(name) / 1e6

    def files_per_s(self, name: str) -> float:
        return len(self.runs[name][0].latencies_ms + self.runs[name][0].errors) / self.seconds(name)

    @property
    def bytes_per_s(self) -> float:
        """Both sets together: their bytes over their (median) times."""
        return sum(self.set_bytes.values()) / sum(self.seconds(name) for name in self.runs)

    def latencies_ms(self, name: str | None = None) -> list[float]:
        names = [name] if name else list(self.runs)
        return [ms for n in names for r in self.runs[n] for ms in r.latencies_ms]

    @property
    def acknowledged(self) -> list[str]:
        return list(dict.fromkeys(p for runs in self.runs.values() for r in runs for p in r.acknowledged))

    @property
    def errors(self) -> list[str]:
        return [e for runs in self.runs.values() for r in runs for e in r.errors]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# --------------------------------------------------------------------------- the files


@dataclass(frozen=True)
class Files:
    """The same bytes for every phase: relative name -> data, and their digests."""

    sets: dict[str, list[tuple[str, bytes]]]
    digests: dict[str, str]

    @classmethod
    def make(cls, sizes: Sizes) -> Files:
        sets = {
            "large": [(f"large/f{i:02d}", os.urandom(sizes.large_size)) for i in range(sizes.large_files)],
            "small": [(f"small/s{i:04d}", os.urandom(sizes.small_size)) for i in range(sizes.small_files)],
        }
        digests = {name: hashlib.sha256(data).hexdigest() for items in sets.values() for name, data in items}
        return cls(sets, digests)


def write_set(
    make_client: Callable[[], Client], root: str, items: list[tuple[str, bytes]], threads: int
) -> SetRun:
    """``items`` written under ``root`` from ``threads`` threads, each with its own client."""
    local = threading.local()

    def one(item: tuple[str, bytes]) -> tuple[str, float | None, str | None]:
        name, data = item
        path = f"{root}/{name}"
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = make_client()
        started = time.perf_counter()
        try:
            client.write(path, data=data, overwrite=True)
        except Exception as exc:
            return path, None, f"{path}: {type(exc).__name__}: {exc}"
        return path, (time.perf_counter() - started) * 1000, None

    with ThreadPoolExecutor(threads) as pool:
        started = time.perf_counter()
        results = list(pool.map(one, items))
        seconds = time.perf_counter() - started
    return SetRun(
        seconds,
        [ms for _, ms, _ in results if ms is not None],
        [path for path, ms, _ in results if ms is not None],
        [err for _, _, err in results if err is not None],
    )


def prepare(make_client: Callable[[], Client], root: str, files: Files) -> None:
    """The sets' directories, and one write to open connections and fill caches (not timed)."""
    client = make_client()
    for name in files.sets:
        client.makedirs(f"{root}/{name}")
    client.write(f"{root}/warm-up", data=b"warm-up", overwrite=True)


# --------------------------------------------------------------------------- checking


def digest_of(client: Client, path: str) -> str | None:
    """sha256 of the file at ``path``, None when it is missing or unreadable."""
    digest = hashlib.sha256()
    try:
        with client.read(path, chunk_size=MIB) as reader:
            for chunk in reader:
                digest.update(chunk)
    except HdfsError:
        return None
    return digest.hexdigest()


def check(
    phase: Phase,
    files: Files,
    urls: dict[str, str],
    where: Callable[[str], list[tuple[str, str]]],
    threads: int,
) -> None:
    """Every acknowledged write of ``phase`` read back from each (cluster, path) ``where`` names."""
    local = threading.local()

    def one(path: str) -> list[str]:
        clients = getattr(local, "clients", None)
        if clients is None:
            clients = local.clients = {name: InsecureClient(url, user="hdfs") for name, url in urls.items()}
        expected = files.digests[path[len(phase.root) + 1 :]]
        return [
            f"{name}:{place}" for name, place in where(path) if digest_of(clients[name], place) != expected
        ]

    acknowledged = phase.acknowledged
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, acknowledged))
    phase.checked = len(acknowledged)
    phase.lost = [path for path, bad in zip(acknowledged, results, strict=True) if bad]
    for path, bad in zip(acknowledged, results, strict=True):
        for place in bad:
            log(f"    LOST: {path} is missing or different at {place}")


# --------------------------------------------------------------------------- gateways


def write_include(include: Path) -> None:
    (include / "gateway").mkdir(parents=True)
    shutil.copy(PROJECT / "include" / "clusters.yaml", include / "clusters.yaml")
    for plan in (SYNC, ASYNC):
        (include / "gateway" / f"{plan.name}.yaml").write_text(yaml.safe_dump(plan.document()))


def gateway_env(include: Path, token: str) -> dict[str, str]:
    tokens = json.dumps({hashlib.sha256(token.encode()).hexdigest(): {"user": USER}})
    return {
        **os.environ,
        "TANDEM_INCLUDE": str(include),
        **{f"AIRFLOW_VAR_TANDEM_GATEWAY_TOKENS__{plan.name.upper()}": tokens for plan in (SYNC, ASYNC)},
    }


def tandem(*args: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandem.cli", *args, "--home", str(home)],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@contextmanager
def gateway(plan: Plan, home: Path, env: dict[str, str], logs: Path, processes: int = 1) -> Iterator[str]:
    """``tandem gateway serve --processes N``; yields its URL once it answers."""
    log_file = logs / f"gateway-{plan.name}.log"
    with log_file.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tandem.cli",
                "gateway",
                "serve",
                plan.name,
                "--home",
                str(home),
                "--json",
                "--processes",
                str(processes),
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=PROJECT,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        try:
            line = lines.get(timeout=START_TIMEOUT)
        except queue.Empty:
            line = ""
        if not line:
            tail = log_file.read_text(errors="replace")[-3000:]
            raise SystemExit(f"the gateway for {plan.name} did not start:\n{tail}")
        yield str(json.loads(line)["url"])
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pending_backups(primaries: dict[str, InsecureClient], plan: Plan) -> int:
    """Marks still waiting for the standby (pending-backup and inflight) on every primary."""
    count = 0
    for client in primaries.values():
        for state in ("pending-backup", "inflight"):
            try:
                count += len(client.list(f"/.tandem/gateway/{plan.name}/{state}"))
            except HdfsError:  # never used: no such queue yet
                continue
    return count


@dataclass(frozen=True)
class Drain:
    files: int
    after_ack_s: float  # from the last ACK until nothing is pending (the interval included)
    files_per_s: float  # from the first backup done until the last


def wait_for_backups(primaries: dict[str, InsecureClient]) -> Drain:
    """Until the async plan has nothing pending: when its backups began (the count first fell)
    and when they ended, polled every 0.1 s."""
    started = time.perf_counter()
    initial = pending = pending_backups(primaries, ASYNC)
    began: float | None = None
    while pending and time.perf_counter() - started < DRAIN_TIMEOUT:
        time.sleep(0.1)
        pending = pending_backups(primaries, ASYNC)
        if began is None and pending < initial:
            began = time.perf_counter()
    ended = time.perf_counter()
    rate = initial / (ended - began) if began is not None and ended > began else float("nan")
    return Drain(initial, ended - started, rate)


def settle(
    phase: Phase, plan: Plan, primaries: dict[str, InsecureClient], home: Path, env: dict[str, str]
) -> None:
    """After the gateway stopped: whatever is still pending is replayed (``tandem gateway replay``)."""
    phase.pending_after = pending_backups(primaries, plan)
    done = tandem("gateway", "replay", plan.name, "--json", env=env, home=home)
    if done.returncode != 0:
        log(f"    replay of {plan.name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    else:
        phase.replayed = json.loads(done.stdout.strip().splitlines()[-1])
        log(f"    replay: {phase.replayed.get('files', 0)} files copied")


# --------------------------------------------------------------------------- the run


def run(work: Path, sizes: Sizes, threads: int, rounds: int, processes: int = 1) -> dict[str, Phase]:
    home, include, logs = work / "home", work / "include", work / "logs"
    logs.mkdir()
    write_include(include)
    token = f"tgw.bench.{secrets.token_urlsafe(24)}"
    env = gateway_env(include, token)
    log(
        f"files: {sizes.large_files} x {sizes.large_size // MIB} MiB and "
        f"{sizes.small_files} x {sizes.small_size // KIB} KiB, {threads} client threads, {rounds} rounds"
    )
    files = Files.make(sizes)
    set_bytes = {name: sum(len(data) for _, data in items) for name, items in files.sets.items()}
    phases = {
        "direct": Phase("direct", "/direct", set_bytes),
        "sync": Phase("gateway sync", SYNC.root, set_bytes),
        "async": Phase("gateway async", ASYNC.root, set_bytes),
    }
    log("starting the embedded clusters ...")
    topology = manager.up(home=home)
    try:
        urls = {name: topology[name].webhdfs_url for name in (*PRIMARIES, STANDBY)}
        primaries = {name: InsecureClient(urls[name], user="hdfs") for name in PRIMARIES}
        with (
            gateway(SYNC, home, env, logs, processes) as sync_url,
            gateway(ASYNC, home, env, logs, processes) as async_url,
        ):
            clients: dict[str, Callable[[], Client]] = {
                "direct": partial(InsecureClient, urls["primary"], user="hdfs"),
                "sync": partial(TokenClient, sync_url, token),
                "async": partial(TokenClient, async_url, token),
            }
            for key, phase in phases.items():
                prepare(clients[key], phase.root, files)
            # rounds interleave the three ways, so that a change in the machine's load (or its
            # page cache) hits each of them alike; each set's time is its median over the rounds
            for n in range(1, rounds + 1):
                for key, phase in phases.items():
                    for name, items in files.sets.items():
                        done = write_set(clients[key], phase.root, items, threads)
                        phase.runs.setdefault(name, []).append(done)
                        log(
                            f"round {n}: {phase.label:<13} {len(items):>4} {name} files {done.seconds:6.2f} s"
                            + (f", {len(done.errors)} refused: {done.errors[0]}" if done.errors else "")
                        )
                    if key == "async":  # its backups run now; they must not overlap the next round
                        drain = wait_for_backups(primaries)
                        phase.drains_s.append(drain.after_ack_s)
                        phase.backup_rates.append(drain.files_per_s)
                        log(
                            f"round {n}: async backups done {drain.after_ack_s:.1f} s after the last ACK "
                            f"({drain.files} files at {drain.files_per_s:.0f} files/s once they began)"
                        )
        log("gateways stopped; replaying whatever is pending, then reading every acknowledged write back ...")
        for key, plan in (("sync", SYNC), ("async", ASYNC)):
            settle(phases[key], plan, primaries, home, env)
        check(phases["direct"], files, urls, lambda p: [("primary", p)], threads)
        for key, plan in (("sync", SYNC), ("async", ASYNC)):
            routes = BucketMap.even(plan.name, PRIMARIES, BUCKETS, "md5")

            def places(path: str, plan: Plan = plan, routes: BucketMap = routes) -> list[tuple[str, str]]:
                return [(routes.route(path), path), (STANDBY, plan.target_root + path)]

            check(phases[key], files, urls, places, threads)
        return phases
    finally:
        manager.down(home)


def summary(phases: dict[str, Phase]) -> dict[str, object]:
    direct, sync, async_ = phases["direct"], phases["sync"], phases["async"]
    return {
        "sync_over_direct": round(sync.bytes_per_s / direct.bytes_per_s, 3),
        "async_over_direct": round(async_.bytes_per_s / direct.bytes_per_s, 3),
        "p50_ms": round(percentile(sync.latencies_ms(), 50), 1),
        "p99_ms": round(percentile(sync.latencies_ms(), 99), 1),
        "writes_lost": len(sync.lost) + len(async_.lost),
    }


def report(
    phases: dict[str, Phase], result: dict[str, object], sizes: Sizes, threads: int, rounds: int
) -> None:
    direct = phases["direct"]
    print(
        f"{sizes.large_files} x {sizes.large_size // MIB} MiB (large) and {sizes.small_files} x "
        f"{sizes.small_size // KIB} KiB (small), {threads} client threads, median of {rounds} rounds"
    )
    head = (
        ("large MB/s", 11),
        ("ratio", 7),
        ("small files/s", 15),
        ("ratio", 7),
        ("both MB/s", 11),
        ("ratio", 7),
    )
    print(" " * 15 + "".join(text.rjust(width) for text, width in head))
    for phase in phases.values():
        print(
            f"{phase.label:<15}{phase.mb_per_s('large'):>11.1f}"
            f"{phase.mb_per_s('large') / direct.mb_per_s('large'):>7.2f}"
            f"{phase.files_per_s('small'):>15.1f}"
            f"{phase.files_per_s('small') / direct.files_per_s('small'):>7.2f}"
            f"{phase.bytes_per_s / 1e6:>11.1f}{phase.bytes_per_s / direct.bytes_per_s:>7.2f}"
        )
    print(f"latency of one write, ms   {'large p50 / p99':>17}   {'small p50 / p99':>17}")
    for phase in phases.values():
        cells = [
            f"{percentile(phase.latencies_ms(n), 50):>8.1f} /{percentile(phase.latencies_ms(n), 99):>7.1f}"
            for n in ("large", "small")
        ]
        print(f"  {phase.label:<25}{cells[0]}   {cells[1]}")
    for key, target in (("sync", SYNC_TARGET), ("async", ASYNC_TARGET)):
        ratio = float(result[f"{key}_over_direct"])  # type: ignore[arg-type]
        print(
            f"{key}_over_direct  {ratio:.3f}  (target >= {target}: {'met' if ratio >= target else 'MISSED'})"
        )
    print(f"gateway sync, one write: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (both sets)")
    for key in ("sync", "async"):
        phase = phases[key]
        drained = (
            f"; backups done {max(phase.drains_s):.1f} s after the last ACK at most (interval "
            f"{ASYNC_INTERVAL}), at {statistics.median(phase.backup_rates):.0f} files/s once begun"
            if phase.drains_s
            else ""
        )
        print(
            f"{phase.label}: {phase.checked} acknowledged files read back from their primary and the "
            f"standby, {len(phase.lost)} lost; {len(phase.errors)} writes refused; "
            f"{phase.pending_after} marks pending at the end, replay copied "
            f"{phase.replayed.get('files', '?')} files{drained}"
        )
    if direct.lost or direct.errors:
        print(f"direct: {len(direct.lost)} files missing or different, {len(direct.errors)} writes failed")
    lost = result["writes_lost"]
    print(f"writes_lost  {lost}  (target 0: {'met' if lost == 0 else 'MISSED'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON summary on stdout")
    parser.add_argument("--quick", action="store_true", help="2 large files, 100 small ones, one round")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the three ways (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument(
        "--processes", type=int, default=1, help="processes of each gateway (serve --processes, default 1)"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 3)
    if args.dir is not None:
        Path(args.dir).mkdir(parents=True, exist_ok=True)  # a --dir that does not exist yet is made
    work = Path(tempfile.mkdtemp(prefix="tandem-bench-gateway-", dir=args.dir))
    try:
        phases = run(work, sizes, args.threads, rounds, args.processes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = summary(phases)
    if args.json:
        print(json.dumps(result))
        return 0
    report(phases, result, sizes, args.threads, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
