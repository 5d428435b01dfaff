"""Extended attributes over WebHDFS (GETXATTRS, LISTXATTRS, SETXATTR, REMOVEXATTR), with Hadoop 3's
parameter checks and value encodings (:mod:`tandem_dev.embedded.xattrs`).
"""

from __future__ import annotations

import json

from tandem_dev.embedded import xattrs
from tandem_dev.embedded.hdfs_exceptions import IllegalArgument
from tandem_dev.embedded.webhdfs.protocol import Handler, Request, Response, empty_response, json_response


def _op_param(req: Request, name: str) -> str:
    """``NamenodeWebHdfsMethods.validateOpParams`` (Hadoop 3's wording)."""
    value = req.params.get(name)
    if not value:
        raise IllegalArgument(f"Required param {name} for op: {req.op} is null or empty")
    return value


def _get_xattrs(req: Request) -> Response:
    encoding = xattrs.parse_encoding(req.params.get("encoding"))
    if encoding is None:
        raise IllegalArgument(f"Required param encoding for op: {req.op} is null or empty")
    names = [xattrs.build(n) for n in req.repeated.get("xattr.name", []) if n]
    found = req.ns.get_xattrs(req.parts, req.user, names or None)
    values = [None if a.value is None else xattrs.encode_value(a.value, encoding) for a in found]
    return json_response(
        {"XAttrs": [{"name": a.prefixed, "value": v} for a, v in zip(found, values, strict=True)]}
    )


def _list_xattrs(req: Request) -> Response:
    names = [a.prefixed for a in req.ns.get_xattrs(req.parts, req.user)]
    return json_response({"XAttrNames": json.dumps(names, ensure_ascii=False, separators=(",", ":"))})


def _set_xattr(req: Request) -> Response:
    flags = xattrs.parse_flags(req.params.get("flag"))
    name = _op_param(req, "xattr.name")
    _op_param(req, "flag")
    value = xattrs.decode_value(req.params.get("xattr.value"))
    req.ns.set_xattr(req.parts, req.user, xattrs.build(name, value), flags)
    return empty_response()


def _remove_xattr(req: Request) -> Response:
    req.ns.remove_xattr(req.parts, req.user, xattrs.build(_op_param(req, "xattr.name")))
    return empty_response()


# extended attributes
XATTR_OPS: dict[tuple[str, str], Handler] = {
    ("GET", "GETXATTRS"): _get_xattrs,
    ("GET", "LISTXATTRS"): _list_xattrs,
    ("PUT", "SETXATTR"): _set_xattr,
    ("PUT", "REMOVEXATTR"): _remove_xattr,
}
