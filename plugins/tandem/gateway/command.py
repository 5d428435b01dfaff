"""``tandem gateway serve|status|token|replay|validate|decrypt|key``."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from tandem import environment
from tandem.errors import TandemError, UsageError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl(2)


def add_arguments(add: Any) -> None:
    gateway = add("gateway", "the write gateway: serve a plan, its status, tokens, replay, decryption")
    gateway.add_argument(
        "action", choices=["serve", "status", "token", "replay", "validate", "decrypt", "key"]
    )
    gateway.add_argument("plan", nargs="?", help="the plan's name (include/gateway/<plan>.yaml)")
    gateway.add_argument("path", nargs="?", help="decrypt: the path as the application wrote it")
    gateway.add_argument(
        "-o", "--output", type=Path, help="decrypt: write the plaintext here (default stdout)"
    )
    gateway.add_argument("--home", type=Path, default=None, help="embedded clusters' home")
    gateway.add_argument("--host", default="127.0.0.1", help="serve: address to bind (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, default=0, help="serve: port (default: a free one)")
    gateway.add_argument("--user", help="token: the user the token writes as")
    gateway.add_argument("--no-worker", action="store_true", help="serve: leave replay to the DAG")
    gateway.add_argument(
        "--processes",
        type=int,
        default=1,
        help="serve: processes sharing the port (default 1); the gateway keeps no state of its own, "
        "so each takes connections as they come, and one of them runs the background replay",
    )
    gateway.add_argument(
        "--inflight-grace",
        type=float,
        default=None,
        help="seconds before a dead write's inflight mark is replayed (default 600)",
    )


def _serve(args: argparse.Namespace, include: Path) -> int:
    if args.processes < 1:
        raise TandemError(f"--processes must be at least 1, not {args.processes}")
    sock = _listen(args.host, args.port, shared=args.processes > 1)
    address = sock.getsockname()[:2]
    # the other processes are forked now, before any thread or connection exists; each listens on
    # the same port (SO_REUSEPORT: the kernel spreads new connections over them) with a gateway of
    # its own, and dies with this one (SIGKILL included)
    children = [_fork_server(sock, address, args, include) for _ in range(args.processes - 1)]
    try:
        return _serve_on(sock, args, include, announce=True, worker=not args.no_worker)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _listen(host: str, port: int, *, shared: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _fork_server(
    inherited: socket.socket, address: tuple[str, int], args: argparse.Namespace, include: Path
) -> int:
    """A child serving ``address`` on a socket of its own (no replay worker, nothing printed);
    returns its pid in the parent, never in the child."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
        inherited.close()  # the parent's own: connections the kernel gives it are the parent's
        sock = _listen(address[0], address[1], shared=True)
        code = _serve_on(sock, args, include, announce=False, worker=False)
    except BaseException:
        log.exception("gateway process %d failed", os.getpid())
    finally:
        os._exit(code)


def _serve_on(
    sock: socket.socket, args: argparse.Namespace, include: Path, *, announce: bool, worker: bool
) -> int:
    import uvicorn

    from tandem.gateway.context import open_plan
    from tandem.gateway.server import create_app
    from tandem.gateway.service import Gateway
    from tandem.gateway.tokens import TokenStore

    ctx = open_plan(include, args.plan)
    if ctx.plan.private_data is not None:
        ctx.protection.key  # noqa: B018 - a missing or malformed master key stops the start, not a write
    gateway = Gateway(ctx, inflight_grace_s=args.inflight_grace, worker=worker)
    app = create_app(gateway, TokenStore(ctx.plan.plan))
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not announce:
                return
            if args.json:
                print(
                    json.dumps({"url": url, "plan": ctx.plan.plan, "webhdfs": f"{url}/webhdfs/v1"}),
                    flush=True,
                )
            else:
                print(
                    f"tandem gateway: plan {ctx.plan.plan} ({ctx.plan.mode}) at {url}/webhdfs/v1; "
                    f"primaries {', '.join(ctx.primaries)}, "
                    f"standby {ctx.standby.name}:{ctx.plan.target.root}"
                    + (f", {args.processes} processes" if args.processes > 1 else ""),
                    flush=True,
                )

    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", http="httptools", timeout_keep_alive=30, access_log=False
    )
    try:
        _Server(config).run(sockets=[sock])
    finally:
        gateway.close()
    return 0


def _status(args: argparse.Namespace, include: Path) -> int:
    from tandem.gateway.context import build_context
    from tandem.gateway.plan import load_plan
    from tandem.gateway.status import plan_status

    status = plan_status(build_context(load_plan(include, args.plan), include))
    if args.json:
        print(json.dumps(status.to_json()))
        return 0
    print(f"plan {status.plan}: mode {status.mode}, {'DEGRADED' if status.degraded else 'healthy'}")
    for side in status.sides:
        role = "standby" if side.name == status.standby else "primary"
        if not side.reachable:
            print(f"  {side.name:<10} {role:<8} unreachable: {side.error}")
            continue
        queues = [
            f"{key.replace('_', '-')} {q.count}" + (f" (oldest {q.oldest_age_s():.0f}s)" if q.count else "")
            for key, q in side.queues.items()
        ]
        print(f"  {side.name:<10} {role:<8} reachable; " + ", ".join(queues))
    if status.evictions:
        print(f"  evictions on {status.standby}: {status.evictions} run(s) made room (see the gateway's log)")
    return 0


def _replay(args: argparse.Namespace, include: Path) -> int:
    from tandem.gateway.context import build_context
    from tandem.gateway.plan import load_plan
    from tandem.gateway.replay import INFLIGHT_GRACE_S, replay_all

    ctx = build_context(load_plan(include, args.plan), include)
    grace = args.inflight_grace if args.inflight_grace is not None else INFLIGHT_GRACE_S
    report = replay_all(ctx, 0.0, grace)
    if args.json:
        print(json.dumps({"plan": ctx.plan.plan, **{k: v for k, v in vars(report).items()}}))
    else:
        print(f"plan {ctx.plan.plan}: {report.summary()}")
    return 1 if report.problems else 0


def _decrypt(args: argparse.Namespace, include: Path) -> int:
    """The target's copy of ``path`` in plaintext (opened with the plan's master key)."""
    from tandem.gateway.context import build_context
    from tandem.gateway.plan import load_plan

    if not args.path:
        raise UsageError("`tandem gateway decrypt PLAN PATH` needs the path the application wrote")
    ctx = build_context(load_plan(include, args.plan), include)
    target, where = ctx.standby.store, ctx.standby.local(args.path)
    if target.status(where) is None:
        raise TandemError(f"{ctx.standby.name} holds no backup of {args.path} (looked at {where})")
    output = args.output
    partial = output.with_name(output.name + ".part") if output else None
    try:
        with target.open(where) as chunks:
            sink = partial.open("wb") if partial else sys.stdout.buffer
            try:
                for block in ctx.protection.open(chunks, args.path):
                    sink.write(block)
            finally:
                if partial:
                    sink.close()
        if partial and output:
            partial.replace(output)  # only a whole, authenticated plaintext gets the name
    finally:
        if partial:
            partial.unlink(missing_ok=True)
    return 0


def _validate(args: argparse.Namespace, include: Path) -> int:
    from tandem.gateway.plan import business_policies, load_plans, plans_dir
    from tandem.policy import check_topology_file

    topology, topology_errors = check_topology_file(include / "clusters.yaml")
    found = load_plans(plans_dir(include), topology, business_policies(include, topology))
    errors = dict(found.errors)
    if topology_errors:  # without the topology no plan's clusters can be checked: that fails too
        errors[include / "clusters.yaml"] = tuple(topology_errors)
    for path, errs in errors.items():
        for err in errs:
            print(f"{path}: {err.field}: {err.reason}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "plans": sorted(found.plans),
                    "errors": {
                        str(p): [{"field": e.field, "reason": e.reason} for e in errs]
                        for p, errs in errors.items()
                    },
                }
            )
        )
    else:
        print(f"{len(found.plans)} plans valid, {len(errors)} files with errors")
    return 1 if errors else 0


def _log_to_stderr() -> None:
    """Tandem's own records (writes refused, sides down, evictions) on stderr, whatever logging
    Airflow configured when it was imported (it keeps the root at ERROR for a clean stdout)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    tandem = logging.getLogger("tandem")
    tandem.handlers[:] = [handler]
    tandem.setLevel(logging.INFO)
    tandem.propagate = False


def run_gateway(args: argparse.Namespace) -> int:
    include = environment.include_dir()
    if args.action not in {"validate", "key"} and not args.plan:
        raise UsageError(f"`tandem gateway {args.action}` needs a plan name")
    if args.action == "token":
        if not args.user:
            raise UsageError("`tandem gateway token` needs --user NAME")
        environment.use(args.home, with_airflow=True, strict=False)
        from tandem.gateway.plan import load_plan
        from tandem.gateway.tokens import issue

        plan = load_plan(include, args.plan)
        token = issue(plan.plan, args.user)
        print(json.dumps({"plan": plan.plan, "user": args.user, "token": token}) if args.json else token)
        return 0
    if args.action == "validate":
        return _validate(args, include)
    if args.action == "key":
        from tandem.gateway.crypto import MasterKey

        key = MasterKey.generate()  # store it as the password of the plan's key connection
        print(json.dumps({"key": key}) if args.json else key)
        return 0
    environment.use(args.home, with_airflow=args.action == "serve", strict=True)
    if args.action in {"serve", "replay"}:
        _log_to_stderr()
    if args.action == "serve":
        return _serve(args, include)
    if args.action == "status":
        return _status(args, include)
    if args.action == "decrypt":
        return _decrypt(args, include)
    return _replay(args, include)
