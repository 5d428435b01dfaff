"""Who writes through a gateway: tokens issued per plan and user, only their hashes kept.

``tandem gateway token PLAN --user NAME`` prints a new token once; Airflow keeps its SHA-256
in the Variable ``tandem_gateway_tokens__<plan>`` (the metadata DB, or whatever secrets backend
the deployment uses; ``AIRFLOW_VAR_*`` wins, as everywhere in Airflow), never the plan file.
Applications present it as WebHDFS clients already can: ``delegation=<token>`` (the ``hdfs``
package's TokenClient, fsspec's ``token=``) or ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

CACHE_S = 5.0


def variable_key(plan: str) -> str:
    return f"tandem_gateway_tokens__{plan}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _load(plan: str) -> dict[str, Any]:
    from airflow.models import Variable

    raw = Variable.get(variable_key(plan), default_var="{}")
    doc = json.loads(raw) if isinstance(raw, str) else raw
    return doc if isinstance(doc, dict) else {}


def issue(plan: str, user: str) -> str:
    """A new token for ``user`` on ``plan``; stores its hash and returns the token itself."""
    from airflow.models import Variable

    token = f"tgw.{plan}.{secrets.token_urlsafe(32)}"
    doc = _load(plan)
    doc[token_hash(token)] = {"user": user, "created": datetime.now(UTC).isoformat(timespec="seconds")}
    Variable.set(
        variable_key(plan),
        json.dumps(doc, sort_keys=True),
        description=f"hashes of the write gateway tokens of plan {plan}",
    )
    return token


class TokenStore:
    """Checks presented tokens against the stored hashes (re-read every few seconds)."""

    def __init__(self, plan: str) -> None:
        self.plan = plan
        self._users: dict[str, str] = {}
        self._loaded = 0.0
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._loaded < CACHE_S:
                return
            doc = _load(self.plan)
            self._users = {
                h: str(v.get("user")) for h, v in doc.items() if isinstance(v, dict) and v.get("user")
            }
            self._loaded = time.monotonic()

    def fresh(self) -> bool:
        """Whether :meth:`user_of` answers from memory now (no read of the stored hashes)."""
        return time.monotonic() - self._loaded < CACHE_S

    def user_of(self, token: str | None) -> str | None:
        # only hashes are compared, so a dictionary lookup reveals nothing about stored tokens
        if not token:
            return None
        self._refresh()
        return self._users.get(token_hash(token))
