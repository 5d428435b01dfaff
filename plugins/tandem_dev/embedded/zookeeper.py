"""Launch the real Apache ZooKeeper server (Debian's ``zookeeper`` package) on loopback.

Each embedded cluster gets its own standalone ZooKeeper, as a production cluster has its own
ensemble. The server is the unmodified ``ZooKeeperServerMain`` on the machine's JRE; this module
only writes its ``zoo.cfg`` and a log4j configuration, starts the JVM, checks it with the
four-letter words ``ruok``/``srvr`` and stops it.

Start-up cost, measured on a 2-core Debian 12 box with OpenJDK 17 (ready = ``ruok`` answers
``imok``): no flags 0.35-0.47 s and 66 MB resident; with :data:`JVM_FLAGS` 0.31 s and 55 MB. The
JVM is already fast here, so the flags mainly shrink memory; stopping takes about 0.3 s.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tandem.errors import EmbeddedError

LOOPBACK = "127.0.0.1"
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
ZOOKEEPER_CONF_DIR = Path("/etc/zookeeper/conf")
# The Debian jar's manifest already lists its runtime dependencies; these two only route its
# slf4j logging to log4j so the server log is not silently dropped (slf4j's NOP default).
_LOGGING_JARS = (Path("/usr/share/java/slf4j-log4j12.jar"), Path("/usr/share/java/log4j-1.2.jar"))
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"

# Small heap, serial GC and the C1 compiler only: a single-node ZooKeeper holding a few znodes
# needs nothing more, and two of them run next to Airflow on 2-core machines. No perf-data file
# in /tmp (UsePerfData) either.
JVM_FLAGS = (
    "-Xms16m",
    "-Xmx128m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.net.preferIPv4Stack=true",
)

_LOG4J = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
log4j.logger.org.apache.zookeeper.server.NIOServerCnxn=WARN
log4j.logger.org.apache.zookeeper.server.command.FourLetterCommands=WARN
"""
# health checks send a four-letter word every time they look; at INFO each one is a log line,
# which would push what matters out of the log tails shown by failing tests

_BIND_FAILURE_MARKERS = ("BindException", "Address already in use")
_PORT_RETRIES = 3


def find_java() -> str:
    """The ``java`` executable: ``$JAVA_HOME/bin/java``, else the one on ``PATH``."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home, "bin", "java"), os.X_OK):
        return str(Path(java_home, "bin", "java"))
    found = shutil.which("java")
    if found is None:
        raise EmbeddedError(
            "Java was not found (no JAVA_HOME, no `java` on PATH); ZooKeeper needs it: "
            "install it with `sudo apt-get install default-jre-headless`, or run `make setup`"
        )
    return found


def find_zookeeper_jar() -> Path:
    """The ZooKeeper server jar: ``$TANDEM_ZOOKEEPER_JAR``, else Debian's package location."""
    jar = Path(os.environ.get("TANDEM_ZOOKEEPER_JAR", str(ZOOKEEPER_JAR)))
    if not jar.is_file():
        raise EmbeddedError(
            f"ZooKeeper was not found at {jar}: install it with `sudo apt-get install zookeeper`, "
            "or run `make setup` (or point TANDEM_ZOOKEEPER_JAR at a zookeeper server jar)"
        )
    return jar


def check_requirements() -> None:
    """Raise :class:`EmbeddedError` saying what to install if Java or ZooKeeper is missing."""
    find_java()
    find_zookeeper_jar()


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now. Another program may take it before we bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could bind ``host:port`` now (with SO_REUSEADDR, as the JVM and Python do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter word and return the whole answer.

    Read-only and safe to retry. Raises :class:`OSError` if nothing answers.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def is_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the server answers ``ruok`` with ``imok``. Never raises."""
    try:
        return four_letter_word(host, port, "ruok", timeout) == "imok"
    except OSError:
        return False


def is_serving(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the server serves clients: ``srvr`` reports a ``Mode``. Never raises.

    ``ruok`` alone is not enough: right after start it answers ``imok`` while ``srvr`` still
    says "This ZooKeeper instance is not currently serving requests".
    """
    try:
        return "Mode" in server_info(host, port, timeout)
    except OSError:
        return False


def server_info(host: str, port: int, timeout: float = 2.0) -> dict[str, str]:
    """The ``srvr`` answer as a mapping (``Zookeeper version``, ``Mode``, ``Node count``...).

    Read-only and safe to retry. Raises :class:`OSError` when the server does not answer.
    """
    answer = four_letter_word(host, port, "srvr", timeout)
    info: dict[str, str] = {}
    for line in answer.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def write_config(
    path: Path,
    *,
    data_dir: Path,
    port: int,
    host: str = LOOPBACK,
    tick_ms: int = 1000,
    sasl: bool = False,
    sasl_required: bool = True,
) -> None:
    """Write a standalone ``zoo.cfg``. Idempotent: the same arguments give the same file.

    ``sasl``: clients may authenticate with SASL (Kerberos), and with ``sasl_required`` every
    client must before anything else (without, an unauthenticated client gets only what the
    ACLs give ``world:anyone``)."""
    lines = {
        # tickTime bounds session timeouts to [2, 20] ticks: 1 s lets a dead cluster's
        # ephemeral /tandem/alive vanish within seconds, which failover tests rely on.
        "tickTime": str(tick_ms),
        "dataDir": str(data_dir),
        "clientPort": str(port),
        "clientPortAddress": host,
        # the AdminServer would listen on 0.0.0.0:8080, clashing with Airflow's API server
        "admin.enableServer": "false",
        "4lw.commands.whitelist": "ruok,srvr,stat,mntr",
        # every client of the embedded clusters comes from 127.0.0.1; the default cap of 60
        # connections per address is reached by a few parallel Airflow tasks
        "maxClientCnxns": "0",
        # the default 64 MB pre-allocated transaction log is far more than a few znodes need
        "preAllocSize": "4096",
        "autopurge.snapRetainCount": "3",
        "autopurge.purgeInterval": "1",
    }
    if sasl:
        lines["authProvider.sasl"] = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
        if sasl_required:
            lines["enforce.auth.enabled"] = "true"
            lines["enforce.auth.schemes"] = "sasl"
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()), encoding="utf-8")


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ZooKeeperKerberos:
    """What a Kerberized ZooKeeper needs: its service key and the realm's ``krb5.conf``."""

    keytab: Path
    principal: str  # zookeeper/<host>@REALM: clients ask for zookeeper/<the host they dial>
    krb5_conf: Path
    # False: clients without SASL may connect too (ZooKeeper's default); the ACLs decide
    required: bool = True

    def jaas(self) -> str:
        return (
            "Server {\n"
            "  com.sun.security.auth.module.Krb5LoginModule required\n"
            f'  useKeyTab=true keyTab="{self.keytab}" storeKey=true useTicketCache=false\n'
            f'  isInitiator=false principal="{self.principal}";\n'
            "};\n"
        )


class ZooKeeperServer:
    """One standalone ZooKeeper server bound to loopback.

    Files live under ``base_dir``: ``zoo.cfg``, ``log4j.properties``, ``data/`` and, unless
    ``log_path`` says otherwise, ``zookeeper.log``. ``port=0`` picks a free port (retrying on a
    lost race); an explicit port that is in use is an :class:`EmbeddedError`.

    The JVM runs in its own session so it survives the process that started it (``tandem up``
    exits while the servers keep running); :attr:`pid` is what a later process needs to stop it.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        log_path: Path | None = None,
        tags: Mapping[str, str] | None = None,
        tick_ms: int = 1000,
        kerberos: ZooKeeperKerberos | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.kerberos = kerberos
        self.host = host
        self._requested_port = port
        self.port = port
        self.log_path = log_path if log_path is not None else self.base_dir / "zookeeper.log"
        # extra -Dtandem.<key>=<value> flags: they mark the JVM's command line so that whoever
        # stops it later can tell it from an unrelated process that reused the pid
        self.tags = dict(tags or {})
        self.tick_ms = tick_ms
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        """The connection string for clients: ``127.0.0.1:PORT``."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The JVM's process handle while this object launched it (None before launch / after stop)."""
        return self._proc

    @property
    def config_path(self) -> Path:
        return self.base_dir / "zoo.cfg"

    def command(self) -> list[str]:
        """The JVM command line for the current configuration."""
        classpath = [str(self.base_dir), str(ZOOKEEPER_CONF_DIR), str(find_zookeeper_jar())]
        classpath += [str(jar) for jar in _LOGGING_JARS if jar.is_file()]
        tags = [f"-Dtandem.{key}={value}" for key, value in sorted(self.tags.items())]
        security = []
        if self.kerberos is not None:
            # Java reads neither KRB5_CONFIG nor /etc/krb5.conf once told where the realm is
            security = [
                f"-Djava.security.auth.login.config={self.base_dir / 'jaas.conf'}",
                f"-Djava.security.krb5.conf={self.kerberos.krb5_conf}",
            ]
        return [
            find_java(),
            *JVM_FLAGS,
            *security,
            f"-Dlog4j.configuration=file:{self.base_dir / 'log4j.properties'}",
            "-Dzookeeper.admin.enableServer=false",
            *tags,
            "-cp",
            ":".join(classpath),
            MAIN_CLASS,
            str(self.config_path),
        ]

    def launch(self) -> None:
        """Start the JVM without waiting for it to serve; pair with :meth:`wait_ready`.

        Raises :class:`EmbeddedError` if Java or ZooKeeper is missing or an explicit port is taken.
        """
        if self._proc is not None and self._proc.poll() is None:
            raise EmbeddedError(f"ZooKeeper {self.hosts} is already running (pid {self._proc.pid})")
        check_requirements()
        if self._requested_port:
            if not port_is_free(self._requested_port, self.host):
                raise EmbeddedError(
                    f"port {self._requested_port} on {self.host} is in use by another program, so ZooKeeper "
                    "cannot listen there: stop that program, or choose another port"
                )
            self.port = self._requested_port
        else:
            self.port = free_port(self.host)
        data_dir = self.base_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "log4j.properties").write_text(_LOG4J, encoding="utf-8")
        if self.kerberos is not None:
            (self.base_dir / "jaas.conf").write_text(self.kerberos.jaas(), encoding="utf-8")
        write_config(
            self.config_path,
            data_dir=data_dir,
            port=self.port,
            host=self.host,
            tick_ms=self.tick_ms,
            sasl=self.kerberos is not None,
            sasl_required=self.kerberos is None or self.kerberos.required,
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- tandem: starting ZooKeeper on {self.hosts} at {time.ctime()} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until ``ruok`` answers ``imok`` and ``srvr`` reports the server serving.

        If the JVM lost a race for an auto-picked port, it is relaunched on another one. Raises
        :class:`EmbeddedError` with the log's tail if the server exits or stays silent.
        """
        retries = 0 if self._requested_port else _PORT_RETRIES
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            if proc is None:
                raise EmbeddedError("ZooKeeper was not launched: call launch() first")
            code = proc.poll()
            if code is not None:
                tail = log_tail(self.log_path)
                if retries > 0 and any(marker in tail for marker in _BIND_FAILURE_MARKERS):
                    retries -= 1
                    self._proc = None
                    self.launch()
                    continue
                raise EmbeddedError(self._failure(f"exited with code {code}", tail))
            if is_ok(self.host, self.port, timeout=1.0) and is_serving(self.host, self.port, timeout=1.0):
                return
            if time.monotonic() > deadline:
                self.stop()
                tail = log_tail(self.log_path)
                raise EmbeddedError(self._failure(f"did not answer within {timeout:.0f} s", tail))
            time.sleep(0.05)

    def _failure(self, what: str, tail: str) -> str:
        hint = ""
        if any(marker in tail for marker in _BIND_FAILURE_MARKERS):
            hint = f" (port {self.port} is in use: stop the program using it, or choose another port)"
        return f"ZooKeeper on {self.hosts} {what}{hint}; log {self.log_path}:\n{tail}"

    def start(self, timeout: float = 30.0) -> None:
        """Launch the server and return once it answers. Not idempotent: one start per stop."""
        self.launch()
        self.wait_ready(timeout)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout``. Idempotent; data is kept."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self._proc = None

    def __enter__(self) -> ZooKeeperServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
