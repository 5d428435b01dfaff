"""The NameNode's metadata reads (GETFILESTATUS, LISTSTATUS, GETCONTENTSUMMARY, GETACLSTATUS...):
each a handler over :class:`~tandem_dev.embedded.namespace.Namespace`, changing nothing.
"""

from __future__ import annotations

import os

from tandem_dev.embedded.namespace import Namespace
from tandem_dev.embedded.webhdfs.jsonutil import content_summary_json, file_status_json, quota_usage_json
from tandem_dev.embedded.webhdfs.params import bad_param
from tandem_dev.embedded.webhdfs.protocol import Handler, Request, Response, empty_response, json_response

LS_LIMIT = 1000  # dfs.ls.limit


def _get_file_status(req: Request) -> Response:
    return json_response({"FileStatus": file_status_json(req.ns.status(req.parts))})


def _list_status(req: Request) -> Response:
    infos, _ = req.ns.list_status(req.parts)
    return json_response({"FileStatuses": {"FileStatus": [file_status_json(i) for i in infos]}})


def _list_status_batch(req: Request) -> Response:
    start_after = req.params.get("startafter") or None
    infos, remaining = req.ns.list_status(req.parts, start_after=start_after, limit=LS_LIMIT)
    listing = {"partialListing": {"FileStatuses": {"FileStatus": [file_status_json(i) for i in infos]}}}
    return json_response({"DirectoryListing": {**listing, "remainingEntries": remaining}})


def _content_summary(req: Request) -> Response:
    return json_response(content_summary_json(req.ns.content_summary(req.parts)))


def _quota_usage(req: Request) -> Response:
    return json_response(quota_usage_json(req.ns.quota_usage(req.parts)))


def _home_directory(req: Request) -> Response:
    return json_response({"Path": Namespace.home_directory(req.user)})


def _trash_root(req: Request) -> Response:
    return json_response({"Path": f"{Namespace.home_directory(req.user)}/.Trash"})


def _acl_status(req: Request) -> Response:
    status = req.ns.acl_status(req.parts)
    return json_response(
        {
            "AclStatus": {
                "entries": list(status.entries),
                "group": status.group,
                "owner": status.owner,
                "permission": format(status.perm, "o"),
                "stickyBit": status.sticky,
            }
        }
    )


def _check_access(req: Request) -> Response:
    action = req.params.get("fsaction", "")
    if len(action) != 3 or any(
        c not in allowed for c, allowed in zip(action, ("r-", "w-", "x-"), strict=True)
    ):
        raise bad_param("fsaction", action, "must match [r-][w-][x-]")
    req.ns.status(req.parts)  # permissions are not enforced: existing is enough
    return empty_response()


def _server_defaults(req: Request) -> Response:
    ns = req.ns
    return json_response(
        {
            "FsServerDefaults": {
                "blockSize": ns.default_block_size,
                "bytesPerChecksum": 512,
                "checksumType": 1,  # DataChecksum.Type.CRC32
                "defaultStoragePolicyId": 7,
                "encryptDataTransfer": False,
                "fileBufferSize": 4096,
                "keyProviderUri": "",
                "replication": ns.default_replication,
                "trashInterval": 0,
                "writePacketSize": 65536,
            }
        }
    )


def _fs_status(req: Request) -> Response:
    stats = os.statvfs(req.ns.root)
    capacity = stats.f_blocks * stats.f_frsize
    remaining = stats.f_bavail * stats.f_frsize
    return json_response(
        {"FsStatus": {"capacity": capacity, "remaining": remaining, "used": capacity - remaining}}
    )


def _delegation_token(req: Request) -> Response:
    """GETDELEGATIONTOKEN: a token for the caller under Kerberos; without security the NameNode
    has no credentials to issue one from and answers a null token (``generateDelegationToken``)."""
    kerberos = req.node.kerberos
    if kerberos is None:
        return json_response({"Token": None})
    return json_response({"Token": {"urlString": kerberos.delegation_token(req.user)}})


# the NameNode's read operations
READ_OPS: dict[tuple[str, str], Handler] = {
    ("GET", "GETDELEGATIONTOKEN"): _delegation_token,
    ("GET", "GETFILESTATUS"): _get_file_status,
    ("GET", "LISTSTATUS"): _list_status,
    ("GET", "LISTSTATUS_BATCH"): _list_status_batch,
    ("GET", "GETCONTENTSUMMARY"): _content_summary,
    ("GET", "GETQUOTAUSAGE"): _quota_usage,
    ("GET", "GETHOMEDIRECTORY"): _home_directory,
    ("GET", "GETTRASHROOT"): _trash_root,
    ("GET", "GETACLSTATUS"): _acl_status,
    ("GET", "CHECKACCESS"): _check_access,
    ("GET", "GETSERVERDEFAULTS"): _server_defaults,
    ("GET", "GETSTATUS"): _fs_status,
}
