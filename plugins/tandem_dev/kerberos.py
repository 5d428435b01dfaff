"""A real MIT Kerberos KDC in a temporary realm, for the tests and the Kerberized demo.

Debian's ``krb5-kdc`` (``krb5kdc``, ``kdb5_util``) and ``krb5-admin-server`` (``kadmin.local``):
the realm lives in one directory with its own ``krb5.conf`` and ``kdc.conf`` (``/etc/krb5.conf`` is
never read), the KDC listens on 127.0.0.1 only, on a free port, over TCP, and is started and
stopped by pid. Principals get random keys; each keytab is exported once (``ktadd`` re-keys, so a
second export would invalidate the first).

Clients find the realm through :meth:`Kdc.env`: ``KRB5_CONFIG``, a replay-cache directory of the
realm's own, and with a client keytab ``KRB5_CLIENT_KTNAME`` (MIT's GSSAPI then gets its ticket
by itself, no ``kinit``). Without one, clients authenticate from the ticket cache alone, as in a
deployment where Airflow's renewer fills it: :func:`airflow_renew` runs
``airflow kerberos --one-time`` with the ``[kerberos]`` settings of :meth:`HomeRealm.env`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tandem.errors import TandemError

if TYPE_CHECKING:
    from tandem.airflow_cli import AirflowCommand

REALM = "TANDEM.TEST"
PROGRAMS = ("krb5kdc", "kdb5_util", "kadmin.local")


def _program(name: str) -> str:
    for where in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if where and Path(where).is_file():
            return where
    raise TandemError(
        f"{name} is not installed: the Kerberos tests need Debian's krb5-kdc, krb5-admin-server and "
        "krb5-user (make setup installs them)"
    )


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def available() -> bool:
    """Are the KDC's programs installed?"""
    try:
        for name in PROGRAMS:
            _program(name)
    except TandemError:
        return False
    return True


def krb5_conf_text(kdcs: dict[str, int], default_realm: str, domain_realm: dict[str, str]) -> str:
    """A ``krb5.conf`` naming the realms of ``kdcs`` (realm -> port on 127.0.0.1), with
    ``domain_realm`` (host -> realm) and, for several realms, direct trust between each two
    (``[capaths]``). Host names are used as written: never canonicalized, no reverse lookups."""
    lines = [
        "[libdefaults]",
        f" default_realm = {default_realm}",
        " dns_lookup_realm = false",
        " dns_lookup_kdc = false",
        " dns_canonicalize_hostname = false",
        " rdns = false",
        " udp_preference_limit = 1",
        " ticket_lifetime = 1h",
        " renew_lifetime = 1d",
        "[realms]",
    ]
    for realm, port in kdcs.items():
        lines += [f" {realm} = {{", f"  kdc = 127.0.0.1:{port}", " }"]
    lines += ["[domain_realm]", *(f" {host} = {realm}" for host, realm in domain_realm.items())]
    if len(kdcs) > 1:
        lines.append("[capaths]")
        for client in kdcs:
            lines += [f" {client} = {{", *(f"  {other} = ." for other in kdcs if other != client), " }"]
    return "\n".join(lines) + "\n"


def trust(*kdcs: Kdc, password: str | None = None) -> None:
    """Cross-realm trust between every two of ``kdcs``, both ways, as separate sites set it up:
    each KDC holds ``krbtgt/<other>@<self>`` and ``krbtgt/<self>@<other>`` with the same key as
    the other's (one password per pair, and the principal's own name as salt)."""
    for i, one in enumerate(kdcs):
        for other in kdcs[i + 1 :]:
            secret = password or secrets.token_hex(24)
            for a, b in ((one.realm, other.realm), (other.realm, one.realm)):
                name = f"krbtgt/{a}@{b}"
                for kdc in (one, other):
                    kdc.run_admin(f"addprinc -pw {secret} {name}")


class Kdc:
    """One realm in ``root``: :meth:`start`, :meth:`principal`, :meth:`keytab`, :meth:`stop`."""

    def __init__(
        self, root: Path, realm: str = REALM, port: int | None = None, *, die_with_parent: bool = False
    ) -> None:
        from tandem_dev.embedded.zookeeper import free_port

        self.root = root
        self.realm = realm
        self.port = port or free_port()
        self.krb5_conf = root / "krb5.conf"
        self.kdc_conf = root / "kdc.conf"
        self.log_path = root / "kdc.log"
        self.pid_file = root / "kdc.pid"
        # tests: the KDC goes with the process that started it, even when that one is SIGKILLed
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None

    # -- the realm ---------------------------------------------------------------------------
    def _write_config(self) -> None:
        d, realm, port = self.root, self.realm, self.port
        self.krb5_conf.write_text(krb5_conf_text({realm: port}, realm, {"localhost": realm}))
        self.kdc_conf.write_text(
            "[kdcdefaults]\n"
            f" kdc_listen = 127.0.0.1:{port}\n"
            f" kdc_tcp_listen = 127.0.0.1:{port}\n"
            "[realms]\n"
            f" {realm} = {{\n"
            f"  database_name = {d}/principal\n"
            f"  key_stash_file = {d}/stash\n"
            f"  acl_file = {d}/kadm5.acl\n"
            "  max_life = 1h\n"
            "  max_renewable_life = 1d\n"
            "  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n"
            " }\n"
            "[logging]\n"
            f" kdc = FILE:{self.log_path}\n"
        )
        (d / "kadm5.acl").write_text("")

    def env(self, client_keytab: Path | None = None) -> dict[str, str]:
        """The variables that point Kerberos clients and servers at this realm."""
        rcache = self.root / "rcache"
        rcache.mkdir(exist_ok=True)
        out = {
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(self.kdc_conf),
            "KRB5RCACHEDIR": str(rcache),
            "KRB5CCNAME": f"FILE:{self.root / 'ccache'}",
        }
        if client_keytab is not None:
            out["KRB5_CLIENT_KTNAME"] = str(client_keytab)
        return out

    def _run(self, *command: str) -> str:
        env = {**os.environ, **self.env()}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise TandemError(f"{' '.join(command[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def start(self, timeout: float = 15.0) -> Kdc:
        """Create the realm's database and start ``krb5kdc`` in the foreground (its pid kept)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if not (self.root / "principal").exists():
            self._run(_program("kdb5_util"), "create", "-s", "-r", self.realm, "-P", secrets.token_hex(16))
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [_program("krb5kdc"), "-n", "-r", self.realm, "-P", str(self.pid_file)],
                env={**os.environ, **self.env()},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        self._wait_listening(timeout)
        return self

    def _wait_listening(self, timeout: float) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise TandemError(f"krb5kdc exited {self._proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            if time.monotonic() > deadline:
                raise TandemError(f"krb5kdc did not listen on 127.0.0.1:{self.port} within {timeout:.0f} s")
            time.sleep(0.02)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The KDC's process handle while this object runs it."""
        return self._proc

    def run_admin(self, query: str) -> str:
        """One ``kadmin.local`` query on this realm's database; its output."""
        return self._run(_program("kadmin.local"), "-r", self.realm, "-q", query)

    def principal(self, name: str) -> str:
        """Add ``name`` (``tandem``, ``HTTP/127.0.0.1``...) with a random key; its full name."""
        full = name if "@" in name else f"{name}@{self.realm}"
        self.run_admin(f"addprinc -randkey {full}")
        return full

    def keytab(self, path: Path, *names: str) -> Path:
        """Export the keys of ``names`` (added first when missing) into ``path``, once."""
        for name in names:
            full = name if "@" in name else f"{name}@{self.realm}"
            if full not in self.principals():
                self.principal(full)
            self._run(_program("kadmin.local"), "-r", self.realm, "-q", f"ktadd -k {path} {full}")
        return path

    def principals(self) -> set[str]:
        listed = self._run(_program("kadmin.local"), "-r", self.realm, "-q", "listprincs")
        return {line.strip() for line in listed.splitlines() if "@" in line and " " not in line.strip()}

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def issued(self, client: str, service: str) -> bool:
        """Did the KDC issue ``client`` a ticket for ``service`` (its log's audit trail)?"""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return False
        return any(
            "TGS_REQ" in line and "ISSUE" in line and f"{client} for {service}" in line
            for line in text.splitlines()
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the KDC (SIGKILL after ``timeout``). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue


# the embedded clusters' services: one realm, every server on 127.0.0.1 (the service principals'
# host is the connections' host, as a client names it, never resolved)
CLIENT = "tandem"
SERVICES = {"http": "HTTP/127.0.0.1", "hive": "hive/127.0.0.1", "zookeeper": "zookeeper/127.0.0.1"}


class HomeRealm:
    """The realm of an embedded home (``<home>/kerberos``): made once, its KDC started by
    ``tandem up --kerberos``; Tandem's keytab and one per service."""

    def __init__(self, home: Path) -> None:
        self.root = home / "kerberos"
        self.kdc = Kdc(self.root, port=self._recorded_port())

    def _recorded_port(self) -> int | None:
        import json

        try:
            return int(json.loads((self.root / "realm.json").read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def keytab(self, key: str) -> Path:
        return self.root / f"{key}.keytab"

    def principal(self, key: str) -> str:
        return f"{CLIENT if key == CLIENT else SERVICES[key]}@{self.kdc.realm}"

    def start(self, owner: str) -> int:
        """Start the KDC (the realm and keytabs made on first use); its pid. The pid file's name
        carries ``owner``, so ``tandem down`` can tell the KDC is this home's."""
        import json

        from tandem_dev.embedded.zookeeper import port_is_free

        if not port_is_free(self.kdc.port):
            self.kdc = Kdc(self.root)
        self.kdc.pid_file = self.root / f"kdc-{owner}.pid"
        self.kdc.start()
        (self.root / "realm.json").write_text(json.dumps({"realm": self.kdc.realm, "port": self.kdc.port}))
        for key in (CLIENT, *SERVICES):
            if not self.keytab(key).exists():
                self.kdc.keytab(self.keytab(key), self.principal(key))
        assert self.kdc.process is not None
        return self.kdc.process.pid

    def env(self, *, renewer: bool = False) -> dict[str, str]:
        """What every process that talks to these clusters needs: the realm, Tandem's keytab (MIT
        Kerberos gets its tickets by itself), Airflow in Kerberos mode with the same ticket cache.

        ``renewer``: no client keytab; Tandem's clients use the ticket cache alone, which
        ``airflow kerberos`` fills from the ``[kerberos]`` principal and keytab
        (:func:`airflow_renew`)."""
        return realm_env(self.kdc, self.principal(CLIENT), self.keytab(CLIENT), self.root / "ccache", renewer)


def realm_env(kdc: Kdc, principal: str, keytab: Path, ccache: Path, renewer: bool) -> dict[str, str]:
    """The variables of :meth:`HomeRealm.env` for any realm, principal and ticket cache."""
    return {
        **kdc.env(None if renewer else keytab),
        "KRB5CCNAME": f"FILE:{ccache}",
        "AIRFLOW__CORE__SECURITY": "kerberos",
        # Airflow's CLI sets KRB5CCNAME from [kerberos] ccache: the same cache
        "AIRFLOW__KERBEROS__CCACHE": str(ccache),
        "AIRFLOW__KERBEROS__KEYTAB": str(keytab),
        "AIRFLOW__KERBEROS__PRINCIPAL": principal,
        # kinit -a asks for tickets bound to this host's addresses, which fails on loopback
        # ("Incorrect net address while renewing credentials"); -A asks for addressless ones
        "AIRFLOW__KERBEROS__INCLUDE_IP": "False",
    }


def airflow_renew(airflow: AirflowCommand) -> float:
    """Fill the ticket cache of ``[kerberos] ccache`` with ``airflow kerberos --one-time`` (its
    ``kinit -k -t <keytab> <principal>``, then ``kinit -R``), as Airflow's renewer does in a
    deployment; how long it took, in seconds. Raises TandemError with its output on failure."""
    started = time.monotonic()
    airflow.run(["kerberos", "--one-time"], timeout=300)
    return time.monotonic() - started
