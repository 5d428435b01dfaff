"""HDFS extended attributes as values: names, value codecs, set flags and the NameNode's rules.

Everything here mirrors one piece of Hadoop 3 and raises what it raises, with its messages:

* names: ``XAttrHelper.buildXAttr`` (the namespace prefix is case-insensitive and is given back in
  lower case; the rest of the name is case-sensitive);
* values: ``XAttrCodec`` (``"text"``, ``0x`` hex, ``0s`` base64 in; TEXT, HEX or BASE64 out);
* flags: ``XAttrSetFlag`` (CREATE, REPLACE or both);
* who may touch what: ``XAttrPermissionFilter`` (``user.`` for everyone, ``trusted.`` for the
  superuser, ``system.``/``security.``/``raw.`` for nobody through this API, except the
  ``security.hdfs.unreadable.by.superuser`` marker) and ``FSDirXAttrOp`` (size and count limits,
  WRITE on the inode, or ownership in a sticky directory, to change ``user.`` attributes; READ to
  get or list any), with ``FSPermissionChecker``'s permission-bit and ACL evaluation;
* order: an inode keeps its attributes as ``XAttrFeature`` does, the last one set first and values
  over 1024 bytes after the others; an empty value reads back as no value (JSON ``null``).

All of it is pure except :func:`groups_of`, which asks the operating system for a user's groups as
Hadoop's default ``ShellBasedUnixGroupsMapping`` does on the NameNode host.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from tandem_dev.embedded import acl as acls
from tandem_dev.embedded.hdfs_exceptions import (
    AccessControl,
    HadoopIllegalArgument,
    HdfsException,
    IllegalArgument,
)

NAMESPACES = ("user", "trusted", "security", "system", "raw")  # XAttr.NameSpace
ENCODINGS = ("TEXT", "HEX", "BASE64")  # XAttrCodec
FLAGS = ("CREATE", "REPLACE")  # XAttrSetFlag
MAX_PER_INODE = 32  # dfs.namenode.fs-limits.max-xattrs-per-inode
MAX_SIZE = 16384  # dfs.namenode.fs-limits.max-xattr-size: name (without prefix) plus value, in bytes
PACK_THRESHOLD = 1024  # XAttrFeature keeps larger values apart, after the packed ones
UNREADABLE_BY_SUPERUSER = "security.hdfs.unreadable.by.superuser"

_BAD_PREFIX = "An XAttr name must be prefixed with user/trusted/security/system/raw, followed by a '.'"
_B64 = frozenset(string.ascii_letters + string.digits + "+/")
_ACTIONS = {"READ": 4, "WRITE": 2}


@dataclass(frozen=True, slots=True)
class XAttr:
    """One extended attribute; ``value`` None is an attribute without a value."""

    namespace: str  # lower case, one of NAMESPACES
    name: str
    value: bytes | None = None

    @property
    def prefixed(self) -> str:
        return f"{self.namespace}.{self.name}"

    def same(self, other: XAttr) -> bool:
        """``XAttr.equalsIgnoreValue``."""
        return self.namespace == other.namespace and self.name == other.name


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the user, its groups, and whether it is the superuser (owner of ``/`` or in the
    supergroup)."""

    user: str
    groups: frozenset[str]
    superuser: bool


class Attributes(Protocol):
    """What the permission checks read of an inode (``INodeAttributes``)."""

    @property
    def owner(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def perm(self) -> int: ...
    @property
    def acl(self) -> str | None: ...
    @property
    def is_dir(self) -> bool: ...


# ------------------------------------------------------------------------------ names and values


def build(name: str | None, value: bytes | None = None) -> XAttr:
    """``XAttrHelper.buildXAttr``: split ``<namespace>.<name>``; HadoopIllegalArgumentException
    (HTTP 400) for a missing or unknown prefix or an empty name."""
    if name is None:
        raise HadoopIllegalArgument("XAttr name cannot be null.")
    index = name.find(".")
    if index < 3:  # the shortest prefix, raw, has 3 characters
        raise HadoopIllegalArgument(_BAD_PREFIX)
    if index == len(name) - 1:
        raise HadoopIllegalArgument("XAttr name cannot be empty.")
    namespace = name[:index].lower()
    if namespace not in NAMESPACES:
        raise HadoopIllegalArgument(_BAD_PREFIX)
    return XAttr(namespace, name[index + 1 :], value)


def decode_value(text: str | None) -> bytes | None:
    """``XAttrCodec.decodeValue``: ``"text"``, ``0x<hex>``, ``0s<base64>``, else the UTF-8 bytes.

    None or "" (WebHDFS's default for ``xattr.value``) is no value. Bad hex is an IOException
    carrying commons-codec's DecoderException, as in Hadoop; base64 is decoded leniently, as
    commons-codec does (characters outside the alphabet are skipped, padding is optional).
    """
    if not text:
        return None
    if len(text) >= 2:
        if text.startswith('"') and text.endswith('"'):
            return text[1:-1].encode("utf-8")
        prefix = text[:2].lower()
        if prefix == "0x":
            return _decode_hex(text[2:])
        if prefix == "0s":
            return _decode_base64(text[2:])
    return text.encode("utf-8")


def _decode_hex(digits: str) -> bytes:
    if len(digits) % 2:
        raise HdfsException("org.apache.commons.codec.DecoderException: Odd number of characters.")
    for index, char in enumerate(digits):
        if char not in string.hexdigits:
            raise HdfsException(
                f"org.apache.commons.codec.DecoderException: Illegal hexadecimal character {char} "
                f"at index {index}"
            )
    return bytes.fromhex(digits)


def _decode_base64(text: str) -> bytes:
    kept = "".join(c for c in text.split("=", 1)[0].replace("-", "+").replace("_", "/") if c in _B64)
    if len(kept) % 4 == 1:  # 6 dangling bits make no byte
        kept = kept[:-1]
    return base64.b64decode(kept + "=" * (-len(kept) % 4))


def encode_value(value: bytes, encoding: str) -> str:
    """``XAttrCodec.encodeValue``: TEXT in double quotes, HEX as ``0x...``, BASE64 as ``0s...``."""
    if encoding == "HEX":
        return "0x" + value.hex()
    if encoding == "BASE64":
        return "0s" + base64.b64encode(value).decode("ascii")
    return '"' + value.decode("utf-8", errors="replace") + '"'


def parse_encoding(text: str | None) -> str | None:
    """The ``encoding`` parameter (``XAttrEncodingParam``); None when absent or empty."""
    if not text:
        return None
    encoding = text.upper()
    if encoding not in ENCODINGS:
        raise _no_enum("encoding", "org.apache.hadoop.fs.XAttrCodec", encoding)
    return encoding


def parse_flags(text: str | None) -> frozenset[str]:
    """The ``flag`` parameter (``XAttrSetFlagParam``): comma-separated, case-insensitive."""
    if not text:
        return frozenset()
    flags = set()
    for item in text.split(","):
        flag = item.strip().upper()
        if flag not in FLAGS:
            raise _no_enum("flag", "org.apache.hadoop.fs.XAttrSetFlag", flag)
        flags.add(flag)
    return frozenset(flags)


def _no_enum(param: str, java_class: str, value: str) -> IllegalArgument:
    return IllegalArgument(
        f'Invalid value for webhdfs parameter "{param}": No enum constant {java_class}.{value}'
    )


# ------------------------------------------------------------------------------------- checks


def check_size(attr: XAttr) -> None:
    """``FSDirXAttrOp.checkXAttrSize``: the name without its prefix plus the value."""
    size = len(attr.name.encode("utf-8")) + len(attr.value or b"")
    if size > MAX_SIZE:
        raise HadoopIllegalArgument(
            "The XAttr is too big. The maximum combined size of the name and value is "
            f"{MAX_SIZE}, but the total size is {size}"
        )


def check_api(attr: XAttr, caller: Caller) -> None:
    """``XAttrPermissionFilter.checkPermissionForApi`` (no ``/.reserved/raw`` paths here)."""
    if attr.namespace == "user" or (attr.namespace == "trusted" and caller.superuser):
        return
    if attr.prefixed == UNREADABLE_BY_SUPERUSER:
        if attr.value is not None:
            raise AccessControl(
                f"Attempt to set a value for '{UNREADABLE_BY_SUPERUSER}'. Values are not allowed for "
                "this xattr."
            )
        return
    raise AccessControl(f"User doesn't have permission for xattr: {attr.prefixed}")


def visible(attrs: Iterable[XAttr], caller: Caller) -> list[XAttr]:
    """``XAttrPermissionFilter.filterXAttrsForApi``: what GETXATTRS and LISTXATTRS may show."""
    return [
        a
        for a in attrs
        if a.namespace == "user"
        or (a.namespace == "trusted" and caller.superuser)
        or a.prefixed == UNREADABLE_BY_SUPERUSER
    ]


def select(shown: list[XAttr], wanted: list[XAttr] | None) -> list[XAttr]:
    """GETXATTRS: all of ``shown``, or the ``wanted`` ones in the order asked; every one must exist."""
    if not wanted:
        return shown
    missing = HdfsException("At least one of the attributes provided was not found.")
    out = []
    for want in wanted:
        found = next((a for a in shown if a.same(want)), None)
        if found is None:
            raise missing
        out.append(found)
    return out


def with_set(existing: list[XAttr], attr: XAttr, flags: frozenset[str], *, is_file: bool) -> list[XAttr]:
    """``FSDirXAttrOp.setINodeXAttrs`` then ``unprotectedSetXAttrs`` for one attribute."""
    exists = any(a.same(attr) for a in existing)
    if not flags:
        raise HadoopIllegalArgument("A flag must be specified.")
    if exists and "REPLACE" not in flags:
        raise HdfsException(f"XAttr: {attr.name} already exists. The REPLACE flag must be specified.")
    if not exists and "CREATE" not in flags:
        raise HdfsException(f"XAttr: {attr.name} does not exist. The CREATE flag must be specified.")
    updated = [attr, *(a for a in existing if not a.same(attr))]
    if sum(1 for a in updated if a.namespace in ("user", "trusted")) > MAX_PER_INODE:
        raise HdfsException(f"Cannot add additional XAttr to inode, would exceed limit of {MAX_PER_INODE}")
    if not is_file and attr.prefixed == UNREADABLE_BY_SUPERUSER:
        raise HdfsException(f"Can only set '{UNREADABLE_BY_SUPERUSER}' on a file.")
    return _as_stored(updated)


def without(existing: list[XAttr], attr: XAttr) -> list[XAttr]:
    """``FSDirXAttrOp.removeXAttr``: the attribute must exist; the marker cannot be removed."""
    if existing and attr.prefixed == UNREADABLE_BY_SUPERUSER:
        raise AccessControl(f"The xattr '{UNREADABLE_BY_SUPERUSER}' can not be deleted.")
    kept = [a for a in existing if not a.same(attr)]
    if len(kept) == len(existing):
        raise HdfsException("No matching attributes found for remove operation")
    return kept


def _as_stored(attrs: list[XAttr]) -> list[XAttr]:
    """What ``new XAttrFeature(attrs).getXAttrs()`` gives back: small values (an empty one becomes
    no value) in order, then the values over PACK_THRESHOLD bytes."""
    small = [
        XAttr(a.namespace, a.name, a.value or None) for a in attrs if len(a.value or b"") <= PACK_THRESHOLD
    ]
    return small + [a for a in attrs if len(a.value or b"") > PACK_THRESHOLD]


# ---------------------------------------------------------------------------------- permissions


def check_read(caller: Caller, path: str, node: Attributes | None) -> None:
    """GETXATTRS/LISTXATTRS: READ on the inode (``fsd.checkPathAccess(pc, iip, READ)``)."""
    _check_access(caller, "READ", path, node)


def check_change(caller: Caller, attr: XAttr, path: str, node: Attributes | None) -> None:
    """``FSDirXAttrOp.checkXAttrChangeAccess``: ``user.`` attributes need WRITE on the inode, or
    to own it when it is a directory with the sticky bit; other namespaces were checked by
    :func:`check_api`."""
    if attr.namespace != "user" or node is None or caller.superuser:
        return
    if node.is_dir and node.perm & 0o1000:
        if caller.user != node.owner:
            raise AccessControl(f"Permission denied. user={caller.user} is not the owner of inode={path}")
        return
    _check_access(caller, "WRITE", path, node)


def _check_access(caller: Caller, action: str, path: str, node: Attributes | None) -> None:
    if node is None or caller.superuser or allowed(caller, node, _ACTIONS[action]):
        return
    kind = "d" if node.is_dir else "-"
    raise AccessControl(
        f'Permission denied: user={caller.user}, access={action}, inode="{path}":'
        f"{node.owner}:{node.group}:{kind}{mode_string(node.perm)}"
    )


def allowed(caller: Caller, node: Attributes, access: int) -> bool:
    """``FSPermissionChecker.hasPermission``: permission bits, or the access ACL when there is one."""
    feature = [e for e in acls.decode_feature(node.acl) if not e.default]
    user_bits, group_bits, other_bits = (node.perm >> 6) & 7, (node.perm >> 3) & 7, node.perm & 7
    if caller.user == node.owner:
        return user_bits & access == access
    if not feature:
        bits = group_bits if node.group in caller.groups else other_bits
        return bits & access == access
    matched = False
    for entry in feature:  # named users, the owning group, named groups; group_bits are the mask
        if entry.type == "user" and entry.name == caller.user:
            return (entry.perm or 0) & group_bits & access == access
        if entry.type == "group" and (entry.name or node.group) in caller.groups:
            if (entry.perm or 0) & group_bits & access == access:
                return True
            matched = True
    return not matched and other_bits & access == access


def mode_string(perm: int) -> str:
    """``FsPermission.toString``: ``rwxr-x---``, the sticky bit as t (or T without other x)."""
    text = acls.perm_symbol((perm >> 6) & 7) + acls.perm_symbol((perm >> 3) & 7) + acls.perm_symbol(perm & 7)
    if perm & 0o1000:
        text = text[:-1] + ("t" if perm & 1 else "T")
    return text


def groups_of(user: str) -> frozenset[str]:
    """The user's groups on this host (none for a user the host does not know), as Hadoop's
    default group mapping finds them on the NameNode host."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return frozenset()
    names = set()
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return frozenset(names)


# ------------------------------------------------------------------------------------- storage


def encode(attrs: list[XAttr]) -> str | None:
    """The ``xattrs`` column: JSON ``[[prefixed name, base64 value or null], ...]``; None when empty."""
    if not attrs:
        return None
    rows = [
        [a.prefixed, None if a.value is None else base64.b64encode(a.value).decode("ascii")] for a in attrs
    ]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def decode(stored: str | None) -> list[XAttr]:
    if not stored:
        return []
    out = []
    for name, value in json.loads(stored):
        namespace, _, rest = str(name).partition(".")
        out.append(XAttr(namespace, rest, None if value is None else base64.b64decode(value)))
    return out
