"""The NameNode's metadata changes (MKDIRS, RENAME, SETOWNER... SETQUOTA, the ACL operations,
TRUNCATE, DELETE); the guarantee of each is its namespace method's.
"""

from __future__ import annotations

from tandem_dev.embedded.hdfs_exceptions import IllegalArgument
from tandem_dev.embedded.namespace import QUOTA_DONT_SET
from tandem_dev.embedded.webhdfs.params import (
    bad_param,
    bool_param,
    destination_param,
    long_param,
    perm_param,
)
from tandem_dev.embedded.webhdfs.protocol import Handler, Request, Response, empty_response, json_response


def _mkdirs(req: Request) -> Response:
    mode = perm_param(req, 0o755)
    return json_response({"boolean": req.ns.mkdirs(req.parts, req.user, 0o755 if mode is None else mode)})


def _rename(req: Request) -> Response:
    destination = destination_param(req)
    options = {o.strip().upper() for o in req.params.get("renameoptions", "").split(",") if o.strip()}
    if not options:
        return json_response({"boolean": req.ns.rename(req.parts, destination)})
    unknown = options - {"NONE", "OVERWRITE", "TO_TRASH"}
    if unknown:
        raise bad_param("renameoptions", ",".join(sorted(unknown)), "unknown rename option")
    req.ns.rename_overwrite(req.parts, destination, overwrite="OVERWRITE" in options)
    return empty_response()


def _set_replication(req: Request) -> Response:
    replication = long_param(req, "replication", req.ns.default_replication, minimum=1)
    assert replication is not None
    return json_response({"boolean": req.ns.set_replication(req.parts, replication)})


def _set_owner(req: Request) -> Response:
    owner, group = req.params.get("owner") or None, req.params.get("group") or None
    if owner is None and group is None:
        raise IllegalArgument("Both owner and group are empty.")
    req.ns.set_owner(req.parts, owner, group)
    return empty_response()


def _set_permission(req: Request) -> Response:
    req.ns.set_permission(req.parts, perm_param(req, None))
    return empty_response()


def _set_times(req: Request) -> Response:
    mtime = long_param(req, "modificationtime", -1, minimum=-1)
    atime = long_param(req, "accesstime", -1, minimum=-1)
    assert mtime is not None and atime is not None
    req.ns.set_times(req.parts, mtime, atime)
    return empty_response()


def _set_quota(req: Request) -> Response:
    nsq = long_param(req, "namespacequota", QUOTA_DONT_SET)
    ssq = long_param(req, "storagespacequota", QUOTA_DONT_SET)
    assert nsq is not None and ssq is not None
    req.ns.set_quota(req.parts, nsq, ssq)
    return empty_response()


def _acl_op(req: Request) -> Response:
    req.ns.change_acl(req.parts, req.op, req.params.get("aclspec"))
    return empty_response()


def _truncate(req: Request) -> Response:
    new_length = long_param(req, "newlength", None, minimum=0)
    if new_length is None:
        raise IllegalArgument('Required param "newlength" for op TRUNCATE is null or empty')
    return json_response({"boolean": req.ns.truncate(req.parts, new_length)})


def _delete(req: Request) -> Response:
    return json_response({"boolean": req.ns.delete(req.parts, bool_param(req, "recursive"))})


# the NameNode's metadata changes
WRITE_OPS: dict[tuple[str, str], Handler] = {
    ("PUT", "MKDIRS"): _mkdirs,
    ("PUT", "RENAME"): _rename,
    ("PUT", "SETREPLICATION"): _set_replication,
    ("PUT", "SETOWNER"): _set_owner,
    ("PUT", "SETPERMISSION"): _set_permission,
    ("PUT", "SETTIMES"): _set_times,
    ("PUT", "SETQUOTA"): _set_quota,
    ("PUT", "SETACL"): _acl_op,
    ("PUT", "MODIFYACLENTRIES"): _acl_op,
    ("PUT", "REMOVEACLENTRIES"): _acl_op,
    ("PUT", "REMOVEDEFAULTACL"): _acl_op,
    ("PUT", "REMOVEACL"): _acl_op,
    ("POST", "TRUNCATE"): _truncate,
    ("DELETE", "DELETE"): _delete,
}
