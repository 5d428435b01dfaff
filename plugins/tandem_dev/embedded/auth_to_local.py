"""Hadoop's ``hadoop.security.auth_to_local``: Kerberos principals to short user names.

As ``org.apache.hadoop.security.authentication.util.KerberosName`` does it, for the rules the
embedded servers need (cross-realm sites map the other realm's principals this way):

- ``DEFAULT``: a principal of the default realm -> its first component (``tandem/h@R`` -> ``tandem``);
- ``RULE:[n:format](match)s/from/to/[g]``: for a principal of ``n`` components, ``format`` built
  from ``$0`` (the realm), ``$1``, ``$2``... (the components); if it matches ``match`` (the whole
  of it), the substitution (``g``: every occurrence) gives the name. The substitution and the
  ``(match)`` are optional.

Rules are tried in order; the first that applies wins; none applying is "No rules applied".
A result still holding ``@`` or ``/`` is refused, as Hadoop's ``hadoop`` mechanism does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RULE = re.compile(
    r"\s*(?:(DEFAULT)|RULE:\[(\d+):([^\]]*)\](?:\(([^)]*)\))?(?:s/([^/]*)/([^/]*)/(g)?)?)\s*(?:\n|$)"
)


class NoMatchingRule(ValueError):
    """No rule maps the principal (Hadoop's ``NoMatchingRule``)."""


@dataclass(frozen=True)
class _Rule:
    default: bool
    components: int = 0
    format: str = ""
    match: str | None = None
    pattern: str | None = None
    replacement: str = ""
    every: bool = False

    def apply(self, parts: list[str], realm: str, default_realm: str) -> str | None:
        if self.default:
            return parts[0] if realm == default_realm else None
        if len(parts) != self.components:
            return None
        values = [realm, *parts]
        base = re.sub(
            r"\$(\d+)",
            lambda m: values[int(m.group(1))] if int(m.group(1)) < len(values) else "",
            self.format,
        )
        if self.match is not None and not re.fullmatch(self.match, base):
            return None
        if self.pattern is None:
            return base
        # Java's $1 in a replacement is Python's \1
        replacement = re.sub(r"\$(\d)", r"\\\1", self.replacement)
        return re.sub(self.pattern, replacement, base, count=0 if self.every else 1)


class AuthToLocal:
    """Parsed ``auth_to_local`` rules for one default realm."""

    def __init__(self, rules: str, default_realm: str) -> None:
        self.default_realm = default_realm
        self.rules: list[_Rule] = []
        text = rules.strip()
        position = 0
        while position < len(text):
            found = _RULE.match(text, position)
            if found is None or found.end() == position:
                raise ValueError(f"invalid auth_to_local rule at {text[position : position + 40]!r}")
            default, n, fmt, match, pattern, replacement, every = found.groups()
            if default:
                self.rules.append(_Rule(True))
            else:
                self.rules.append(_Rule(False, int(n), fmt, match, pattern, replacement or "", bool(every)))
            position = found.end()

    def short_name(self, principal: str) -> str:
        """The user ``principal`` runs as; :class:`NoMatchingRule` when no rule maps it."""
        name, at, realm = principal.partition("@")
        parts = name.split("/")
        for rule in self.rules:
            user = rule.apply(parts, realm if at else self.default_realm, self.default_realm)
            if user is None:
                continue
            if not user or "@" in user or "/" in user:
                raise NoMatchingRule(f"Non-simple name {user!r} after auth_to_local rule for {principal}")
            return user
        raise NoMatchingRule(f"No rules applied to {principal}")
