"""The data path, both halves: the NameNode checks a CREATE, APPEND, OPEN or GETFILECHECKSUM and
redirects it (307, or 200 with ``noredirect``) to the DataNode, which moves the bytes.
"""

from __future__ import annotations

import threading
from urllib.parse import quote, urlencode

from tandem_dev.embedded.hdfs_exceptions import FileNotFound, HdfsException
from tandem_dev.embedded.namespace import PendingWrite
from tandem_dev.embedded.webhdfs.jsonutil import checksum_json
from tandem_dev.embedded.webhdfs.params import bool_param, long_param, perm_param
from tandem_dev.embedded.webhdfs.protocol import (
    PREFIX,
    Handler,
    Request,
    Response,
    empty_response,
    json_response,
)

CHUNK = 1 << 20


def _redirect(req: Request, op: str) -> Response:
    """The NameNode half of a data operation: point the client at the DataNode."""
    query = {"op": op, **{k: v for k, v in req.params.items() if k not in ("op", "noredirect")}}
    query["namenoderpcaddress"] = req.node.namenode_address
    if req.node.kerberos is not None:  # the DataNode checks this token, not SPNEGO
        query["delegation"] = req.node.kerberos.delegation_token(req.user)
    location = f"http://{req.node.datanode_address}{PREFIX}{quote(req.path, safe='/')}?{urlencode(query)}"
    if bool_param(req, "noredirect"):
        return json_response({"Location": location})
    return Response(307, b"", "application/octet-stream", [("Location", location)])


def _require_file(req: Request) -> None:
    if req.ns.status(req.parts).is_dir:
        raise FileNotFound(f"Path is not a file: {req.path}")


def _nn_open(req: Request) -> Response:
    offset = long_param(req, "offset", 0, minimum=0)
    long_param(req, "length", None, minimum=0)
    _require_file(req)
    length = req.ns.status(req.parts).length
    if offset is not None and offset >= length > 0:  # NamenodeWebHdfsMethods.chooseDatanode
        raise HdfsException(f"Offset={offset} out of the range [0, {length}); OPEN, path={req.path}")
    return _redirect(req, "OPEN")


def _nn_checksum(req: Request) -> Response:
    _require_file(req)
    return _redirect(req, "GETFILECHECKSUM")


def _nn_create(req: Request) -> Response:
    bool_param(req, "overwrite")
    perm_param(req, None)
    long_param(req, "blocksize", None, minimum=1)
    long_param(req, "replication", None, minimum=1)
    long_param(req, "buffersize", None, minimum=1)
    return _redirect(req, "CREATE")


def _nn_append(req: Request) -> Response:
    long_param(req, "buffersize", None, minimum=1)
    _require_file(req)
    return _redirect(req, "APPEND")


# the NameNode half: checks, then a redirect to the DataNode
NAMENODE_DATA_OPS: dict[tuple[str, str], Handler] = {
    ("GET", "OPEN"): _nn_open,
    ("GET", "GETFILECHECKSUM"): _nn_checksum,
    ("PUT", "CREATE"): _nn_create,
    ("POST", "APPEND"): _nn_append,
}


_buffers = threading.local()


def _buffer() -> memoryview:
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = memoryview(bytearray(CHUNK))
        _buffers.view = view
    return view


def _receive(req: Request, pending: PendingWrite) -> None:
    """Stream the body into a pending write and commit it; on any failure nothing is kept."""
    try:
        view = _buffer()
        while True:
            count = req.body.readinto(view)
            if not count:
                break
            pending.write(view[:count])
        req.ns.commit_write(pending)
    except BaseException:
        req.ns.abort_write(pending)
        raise


def _dn_create(req: Request) -> Response:
    pending = req.ns.begin_create(
        req.parts,
        req.user,
        overwrite=bool_param(req, "overwrite"),
        perm=perm_param(req, 0o644) or 0,
        replication=long_param(req, "replication", None, minimum=1),
        block_size=long_param(req, "blocksize", None, minimum=1),
    )
    _receive(req, pending)
    location = f"webhdfs://{req.node.namenode_address}{quote(req.path, safe='/')}"
    return Response(201, b"", "application/octet-stream", [("Location", location)])


def _dn_append(req: Request) -> Response:
    _receive(req, req.ns.begin_append(req.parts, req.user))
    return empty_response()


def _dn_open(req: Request) -> Response:
    offset = long_param(req, "offset", 0, minimum=0)
    length = long_param(req, "length", None, minimum=0)
    assert offset is not None
    handle = req.ns.open_read(req.parts, offset, length)
    return Response(200, b"", "application/octet-stream", stream=handle)


def _dn_checksum(req: Request) -> Response:
    return json_response(checksum_json(req.ns.checksum(req.parts)))


DATANODE_OPS: dict[tuple[str, str], Handler] = {
    ("PUT", "CREATE"): _dn_create,
    ("POST", "APPEND"): _dn_append,
    ("GET", "OPEN"): _dn_open,
    ("GET", "GETFILECHECKSUM"): _dn_checksum,
}
