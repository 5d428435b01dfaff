"""HDFS ACLs as values: parsing ACL specs and the NameNode's ACL transformations.

HDFS keeps an ACL in two places: the permission bits hold the owner, group-class and other
entries (the group bits are the *mask* once an extended ACL exists), and an ACL "feature" holds
the rest (named users, the unnamed group entry, named groups, and every default entry). Every
operation works on the *logical* ACL rebuilt from both, applies the same rules as Hadoop's
``AclTransformation`` (merge, replace, filter, automatic mask, copied default base entries) and
splits the result back. Everything here is pure; nothing touches storage.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from tandem_dev.embedded.hdfs_exceptions import AclError, HadoopIllegalArgument

MAX_ENTRIES = 32
_TYPES = ("user", "group", "mask", "other")
_TYPE_ORDER = {name: index for index, name in enumerate(_TYPES)}
_PERM_RE = re.compile(r"^[r-][w-][x-]$")


def perm_symbol(bits: int) -> str:
    return ("r" if bits & 4 else "-") + ("w" if bits & 2 else "-") + ("x" if bits & 1 else "-")


def _parse_perm(text: str, entry: str) -> int:
    if not _PERM_RE.match(text):
        raise HadoopIllegalArgument(f"Invalid permission in <aclSpec> : {entry}")
    return (4 if text[0] == "r" else 0) | (2 if text[1] == "w" else 0) | (1 if text[2] == "x" else 0)


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One ACL entry; ``name`` is "" for the unnamed (owner, owning group, mask, other) entries."""

    default: bool
    type: str
    name: str
    perm: int | None

    def key(self) -> tuple[int, int, int, str]:
        """Hadoop's order: access before default; user, group, mask, other; unnamed first."""
        return (1 if self.default else 0, _TYPE_ORDER[self.type], 1 if self.name else 0, self.name)

    def __str__(self) -> str:
        text = ("default:" if self.default else "") + f"{self.type}:{self.name}"
        return text if self.perm is None else f"{text}:{perm_symbol(self.perm)}"


def parse_entry(text: str, *, with_perm: bool) -> AclEntry:
    """Parse ``[default:]type:[name][:perm]`` exactly as Hadoop's ``AclEntry.parseAclEntry`` does."""
    fields = text.split(":")
    while fields and not fields[-1]:  # Java's String.split drops trailing empty strings
        fields.pop()
    index = 1 if fields and fields[0] == "default" else 0
    if len(fields) <= index:
        raise HadoopIllegalArgument(f"Invalid <aclSpec> : {text}")
    kind = fields[index].lower()
    if kind not in _TYPE_ORDER:
        raise HadoopIllegalArgument(f"Invalid type of acl in <aclSpec> :{text}")
    index += 1
    name = ""
    if len(fields) > index:
        name = fields[index]
        index += 1
    perm: int | None = None
    if with_perm:
        if len(fields) <= index:
            raise HadoopIllegalArgument(f"Invalid <aclSpec> : {text}")
        perm = _parse_perm(fields[index], text)
        index += 1
    if len(fields) > index:
        raise HadoopIllegalArgument(f"Invalid <aclSpec> : {text}")
    return AclEntry(bool(fields[0] == "default"), kind, name, perm)


def parse_spec(spec: str, *, with_perm: bool) -> list[AclEntry]:
    """Parse a comma-separated ACL spec; raises ``HadoopIllegalArgumentException`` (HTTP 400)."""
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    if not entries:
        raise HadoopIllegalArgument("Invalid <aclSpec> : empty")
    parsed = [parse_entry(e, with_perm=with_perm) for e in entries]
    if len({e.key() for e in parsed}) != len(parsed):
        raise AclError("Invalid ACL: the ACL spec contains duplicate entries.")
    return parsed


def decode_feature(stored: str | None) -> tuple[AclEntry, ...]:
    if not stored:
        return ()
    return tuple(parse_entry(e, with_perm=True) for e in stored.split(","))


def encode_feature(entries: tuple[AclEntry, ...]) -> str | None:
    return ",".join(str(e) for e in entries) if entries else None


def logical_acl(perm: int, feature: tuple[AclEntry, ...]) -> list[AclEntry]:
    """Rebuild the full sorted ACL from permission bits and the stored feature entries."""
    access = [e for e in feature if not e.default]
    defaults = [e for e in feature if e.default]
    result = [AclEntry(False, "user", "", (perm >> 6) & 7)]
    if access:
        result += access
        result.append(AclEntry(False, "mask", "", (perm >> 3) & 7))
    else:
        result.append(AclEntry(False, "group", "", (perm >> 3) & 7))
    result.append(AclEntry(False, "other", "", perm & 7))
    return sorted(result + defaults, key=AclEntry.key)


def _copy_defaults(entries: list[AclEntry]) -> None:
    """A default ACL missing its user/group/other base entries inherits the access ones."""
    if not any(e.default for e in entries):
        return
    present = {(e.type, e.name) for e in entries if e.default}
    for kind in ("user", "group", "other"):
        if (kind, "") not in present:
            access = next((e for e in entries if not e.default and e.type == kind and not e.name), None)
            if access is not None:
                entries.append(AclEntry(True, kind, "", access.perm))


def _calculate_masks(
    entries: list[AclEntry], provided: dict[bool, AclEntry], mask_dirty: set[bool], scope_dirty: set[bool]
) -> None:
    for scope in sorted({e.default for e in entries}):
        scoped = [e for e in entries if e.default == scope]
        needed = any(e.name for e in scoped)
        union = 0
        for e in scoped:
            if e.type == "group" or e.name:
                union |= e.perm or 0
        if scope not in provided and needed and scope in mask_dirty:
            raise AclError("Invalid ACL: mask is required and cannot be deleted.")
        if scope in provided and (scope not in scope_dirty or scope in mask_dirty):
            entries.append(provided[scope])
        elif needed or scope in provided:
            # Hadoop 3 (HDFS-7697) recalculates a mask the ACL had, even with no named entry left
            entries.append(AclEntry(scope, "mask", "", union))


def _build(entries: list[AclEntry]) -> list[AclEntry]:
    # Hadoop 3 (HDFS-7582) allows MAX_ENTRIES access entries and as many default entries
    for scope, label in ((False, "access"), (True, "default")):
        count = sum(1 for e in entries if e.default == scope)
        if count > MAX_ENTRIES:
            raise AclError(
                f"Invalid ACL: ACL has {count} {label} entries, which exceeds maximum of {MAX_ENTRIES}."
            )
    entries.sort(key=AclEntry.key)
    for prev, cur in itertools.pairwise(entries):
        if prev.key() == cur.key():
            raise AclError("Invalid ACL: multiple entries with same scope, type and name.")
    for e in entries:
        if e.name and e.type in ("mask", "other"):
            raise AclError(f"Invalid ACL: this entry type must not have a name: {e}.")
    keys = {(e.default, e.type, e.name) for e in entries}
    has_default = any(e.default for e in entries)
    for kind in ("user", "group", "other"):
        if (False, kind, "") not in keys:
            raise AclError("Invalid ACL: the user, group and other entries are required.")
        if has_default and (True, kind, "") not in keys:
            raise AclError("Invalid default ACL: the user, group and other entries are required.")
    return entries


def _finish(
    builder: list[AclEntry], provided: dict[bool, AclEntry], mask_dirty: set[bool], scope_dirty: set[bool]
) -> list[AclEntry]:
    _copy_defaults(builder)
    _calculate_masks(builder, provided, mask_dirty, scope_dirty)
    return _build(builder)


def merge(existing: list[AclEntry], spec: list[AclEntry]) -> list[AclEntry]:
    """MODIFYACLENTRIES: entries of the spec replace or join the existing ones."""
    by_key = {(e.default, e.type, e.name): e for e in spec}
    found: set[tuple[bool, str, str]] = set()
    builder: list[AclEntry] = []
    provided: dict[bool, AclEntry] = {}
    mask_dirty: set[bool] = set()
    scope_dirty: set[bool] = set()

    def take(entry: AclEntry, dirty: bool) -> None:
        if dirty:
            scope_dirty.add(entry.default)
        if entry.type == "mask":
            provided[entry.default] = entry
            if dirty:
                mask_dirty.add(entry.default)
        else:
            builder.append(entry)

    for entry in existing:
        key = (entry.default, entry.type, entry.name)
        replacement = by_key.get(key)
        if replacement is not None:
            found.add(key)
        take(replacement or entry, replacement is not None)
    for entry in spec:
        if (entry.default, entry.type, entry.name) not in found:
            take(entry, True)
    return _finish(builder, provided, mask_dirty, scope_dirty)


def _keys(entries: list[AclEntry]) -> set[tuple[bool, str, str]]:
    return {(e.default, e.type, e.name) for e in entries}


def replace(existing: list[AclEntry], spec: list[AclEntry]) -> list[AclEntry]:
    """SETACL: the spec replaces each scope (access, default) it mentions."""
    builder: list[AclEntry] = []
    provided: dict[bool, AclEntry] = {}
    mask_dirty: set[bool] = set()
    scope_dirty = {e.default for e in spec}
    for entry in spec:
        if entry.type == "mask":
            provided[entry.default] = entry
            mask_dirty.add(entry.default)
        else:
            builder.append(entry)
    for entry in existing:
        if entry.default in scope_dirty:
            continue
        if entry.type == "mask":
            provided[entry.default] = entry
        else:
            builder.append(entry)
    return _finish(builder, provided, mask_dirty, scope_dirty)


def remove_entries(existing: list[AclEntry], spec: list[AclEntry]) -> list[AclEntry]:
    """REMOVEACLENTRIES: drop the entries the spec names (permissions in the spec are ignored)."""
    doomed = _keys(spec)
    builder: list[AclEntry] = []
    provided: dict[bool, AclEntry] = {}
    mask_dirty: set[bool] = set()
    scope_dirty: set[bool] = set()
    for entry in existing:
        if (entry.default, entry.type, entry.name) in doomed:
            scope_dirty.add(entry.default)
            if entry.type == "mask":
                mask_dirty.add(entry.default)
        elif entry.type == "mask":
            provided[entry.default] = entry
        else:
            builder.append(entry)
    return _finish(builder, provided, mask_dirty, scope_dirty)


def remove_default(existing: list[AclEntry]) -> list[AclEntry]:
    """REMOVEDEFAULTACL: keep the access entries only."""
    return _build([e for e in existing if not e.default])


def store(acl: list[AclEntry], perm: int, *, is_dir: bool) -> tuple[int, tuple[AclEntry, ...]]:
    """Split a full ACL back into permission bits and feature entries, as ``AclStorage`` does."""
    access = [e for e in acl if not e.default]
    defaults = tuple(e for e in acl if e.default)
    if defaults and not is_dir:
        raise AclError("Invalid ACL: only directories may have a default ACL.")
    sticky = perm & 0o1000
    user, group_class, other = access[0].perm or 0, access[-2].perm or 0, access[-1].perm or 0
    new_perm = sticky | (user << 6) | (group_class << 3) | other
    if len(acl) == 3:
        return new_perm, ()
    feature = tuple(access[1:-2]) if len(access) > 3 else ()
    return new_perm, feature + defaults


def remove_all(perm: int, feature: tuple[AclEntry, ...]) -> int:
    """REMOVEACL: drop every extended entry; the group bits come back from the group entry."""
    group = next((e for e in feature if not e.default and e.type == "group" and not e.name), None)
    if group is None or group.perm is None:
        return perm
    return (perm & ~0o070) | (group.perm << 3)


def status_entries(feature: tuple[AclEntry, ...]) -> list[str]:
    """``AclStatus.entries``: the feature entries, as Hadoop's ``getAclStatus`` lists them."""
    return [str(e) for e in sorted(feature, key=AclEntry.key)]


def inherit(
    parent_feature: tuple[AclEntry, ...], perm: int, *, is_dir: bool
) -> tuple[int, tuple[AclEntry, ...]]:
    """ACL of a new child under a parent with a default ACL (``AclStorage.copyINodeDefaultAcl``).

    The parent's default entries become the child's access entries, filtered by the requested
    mode for the owner, mask (or group, for a minimal default) and other; a new directory also
    receives the parent's default ACL. Without a parent default ACL the mode is kept as is.
    """
    defaults = [e for e in parent_feature if e.default]
    if not defaults:
        return perm, ()
    minimal = len(defaults) == 3
    requested = {
        "user": (perm >> 6) & 7,
        "group": (perm >> 3) & 7,
        "mask": (perm >> 3) & 7,
        "other": perm & 7,
    }
    access: list[AclEntry] = []
    for entry in sorted(defaults, key=AclEntry.key):
        bits = entry.perm or 0
        filtered = (
            (entry.type == "user" and not entry.name)
            or (entry.type == "group" and minimal and not entry.name)
            or entry.type in ("mask", "other")
        )
        if filtered:
            bits &= requested[entry.type]
        access.append(AclEntry(False, entry.type, entry.name, bits))
    child_defaults = tuple(defaults) if is_dir else ()
    new_perm = (
        (perm & 0o1000) | (access[0].perm or 0) << 6 | (access[-2].perm or 0) << 3 | (access[-1].perm or 0)
    )
    if len(access) == 3 and not child_defaults:
        return new_perm, ()
    feature = tuple(access[1:-2]) if len(access) > 3 else ()
    return new_perm, feature + tuple(sorted(child_defaults, key=AclEntry.key))
