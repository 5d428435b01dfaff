"""Kerberos for the embedded WebHDFS, as Hadoop's ``hadoop-auth`` and WebHDFS do it.

NameNode requests go through SPNEGO (``KerberosAuthenticationHandler`` and
``AuthenticationFilter``):

- no ``Authorization: Negotiate`` and no valid ``hadoop.auth`` cookie: 401 with
  ``WWW-Authenticate: Negotiate`` (and the cookie cleared);
- a token the service's keytab accepts: the request runs as the principal's short name (Hadoop's
  ``auth_to_local`` rules, :mod:`tandem_dev.embedded.auth_to_local`: DEFAULT maps the server's
  own realm; another realm's principal needs a rule, else 403 "No rules applied"), the
  answer carries the acceptor's AP-REP (``WWW-Authenticate: Negotiate <b64>``, how the client
  authenticates the server) and a signed ``hadoop.auth`` cookie that spares the next requests the
  exchange; a token it cannot accept: 403;
- ``user.name`` is ignored; ``doas`` is allowed only for the configured proxy users (and for
  oneself), else 403 ``SecurityException`` naming both users.

The NameNode's 307 to the DataNode carries ``delegation=<token>`` (``redirectURI``); the DataNode
checks that token, not SPNEGO, and runs the operation as the user it names (403 ``InvalidToken``
otherwise). Tokens and cookies are HMAC-SHA256-signed with a secret of the server's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

from tandem_dev.embedded.auth_to_local import AuthToLocal, NoMatchingRule
from tandem_dev.embedded.hdfs_exceptions import HdfsException

COOKIE = "hadoop.auth"


class SecurityError(HdfsException):
    java_class = "java.lang.SecurityException"


class InvalidToken(HdfsException):
    java_class = "org.apache.hadoop.security.token.SecretManager$InvalidToken"


@dataclass
class Refusal(Exception):
    """An HTTP refusal from the authentication filter (not a WebHDFS RemoteException)."""

    status: int
    message: str
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Caller:
    """Who a request runs as: the authenticated principal, its short name, and what to add to
    the response (the AP-REP, a fresh cookie)."""

    principal: str
    user: str
    headers: tuple[tuple[str, str], ...] = ()


class Spnego:
    """The NameNode's filter and the DataNode's token check, with one keytab and one secret."""

    def __init__(
        self,
        keytab: Path,
        realm: str,
        proxy_users: Iterable[str] = (),
        *,
        validity_s: float = 36000.0,
        secret: bytes | None = None,
        auth_to_local: str = "DEFAULT",
    ) -> None:
        self.keytab = keytab
        self.realm = realm
        # principal -> user, as hadoop.security.auth_to_local (other realms' principals need a rule)
        self.names = AuthToLocal(auth_to_local, realm)
        self.proxy_users = frozenset(proxy_users)
        self.validity_s = validity_s
        self._secret = secret or secrets.token_bytes(32)
        self._creds: Any = None
        self.authenticated: list[str] = []  # principals that completed SPNEGO, in order

    # -- signing -----------------------------------------------------------------------------
    def _sign(self, text: str) -> str:
        digest = hmac.new(self._secret, text.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def _signed(self, text: str) -> str:
        return f"{text}&s={self._sign(text)}"

    def _verified(self, signed: str) -> dict[str, str] | None:
        text, sep, signature = signed.rpartition("&s=")
        if not sep or not hmac.compare_digest(signature.encode(), self._sign(text).encode()):
            return None
        parts = [part.split("=", 1) for part in text.split("&")]
        if any(len(part) != 2 for part in parts) or len({k for k, _ in parts}) != len(parts):
            return None  # as Hadoop's AuthToken: every field once, nothing else
        fields = dict((k, v) for k, v in parts)
        try:
            if int(fields.get("e", "0")) < time.time() * 1000:
                return None
        except ValueError:
            return None
        return fields

    # -- NameNode: SPNEGO ----------------------------------------------------------------------
    def authenticate(self, headers: Mapping[str, str] | Message) -> Caller:
        """The caller of a NameNode request, or :class:`Refusal` (401 or 403)."""
        cookie = self._cookie(headers.get("Cookie", ""))
        if cookie is not None:
            return Caller(cookie["p"], cookie["u"])
        authorization = headers.get("Authorization", "")
        if not authorization.startswith("Negotiate "):
            raise Refusal(
                401, "Authentication required", [("WWW-Authenticate", "Negotiate"), self._cleared()]
            )
        return self._accept(authorization[len("Negotiate ") :].strip())

    def _accept(self, token: str) -> Caller:
        import gssapi
        from gssapi.raw.misc import GSSError

        try:
            context = gssapi.SecurityContext(creds=self._credentials(), usage="accept")
            answer = context.step(base64.b64decode(token))
            complete = context.complete
        except (GSSError, ValueError) as exc:
            raise Refusal(403, f"GSSException: {exc}") from exc
        if not complete:
            challenge = f"Negotiate {base64.b64encode(answer or b'').decode()}"
            raise Refusal(401, "Authentication required", [("WWW-Authenticate", challenge)])
        principal = str(context.initiator_name)
        self.authenticated.append(principal)
        try:
            user = self.names.short_name(principal)
        except NoMatchingRule as exc:
            raise Refusal(403, str(exc)) from exc
        if any(c in principal for c in '&="; '):  # nothing that could forge a field
            raise Refusal(403, f"No rules applied to {principal}")
        expires = int((time.time() + self.validity_s) * 1000)
        cookie = self._signed(f"u={user}&p={principal}&t=kerberos&e={expires}")
        out: list[tuple[str, str]] = [("Set-Cookie", f'{COOKIE}="{cookie}"; Path=/; HttpOnly')]
        if answer:
            out.insert(0, ("WWW-Authenticate", f"Negotiate {base64.b64encode(answer).decode()}"))
        return Caller(principal, user, tuple(out))

    def _credentials(self) -> Any:
        import gssapi

        if self._creds is None:
            self._creds = gssapi.Credentials(usage="accept", store={"keytab": str(self.keytab)})
        return self._creds

    def _cookie(self, header: str) -> dict[str, str] | None:
        if COOKIE not in header:
            return None
        try:
            jar = SimpleCookie()
            jar.load(header)
        except CookieError:
            return None
        morsel = jar.get(COOKIE)
        if morsel is None or not morsel.value:
            return None
        fields = self._verified(morsel.value.strip('"'))
        if fields is None or fields.get("t") != "kerberos" or not fields.get("u") or not fields.get("p"):
            return None
        return fields

    @staticmethod
    def _cleared() -> tuple[str, str]:
        return ("Set-Cookie", f"{COOKIE}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly")

    def effective_user(self, caller: Caller, doas: str | None) -> str:
        """The user an operation runs as: the caller, or whom it may impersonate."""
        if not doas or doas == caller.user:
            return caller.user
        if caller.user not in self.proxy_users:
            raise SecurityError(
                "Failed to obtain user group information: org.apache.hadoop.security.authorize."
                f"AuthorizationException: User: {caller.user} is not allowed to impersonate {doas}"
            )
        return doas

    # -- DataNode: delegation tokens ------------------------------------------------------------
    def delegation_token(self, user: str) -> str:
        """A token naming ``user`` for the DataNode (URL-safe)."""
        expires = int((time.time() + self.validity_s) * 1000)
        signed = self._signed(f"u={user}&e={expires}")
        return base64.urlsafe_b64encode(signed.encode()).decode().rstrip("=")

    def token_user(self, token: str | None) -> str:
        """The user a DataNode request's token names; :class:`InvalidToken` otherwise."""
        if not token:
            raise InvalidToken("Delegation token is required (security is enabled)")
        try:
            signed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except ValueError as exc:
            raise InvalidToken("Failed to decode the delegation token") from exc
        fields = self._verified(signed)
        if fields is None or not fields.get("u"):
            raise InvalidToken("token is expired or does not exist")
        return fields["u"]
