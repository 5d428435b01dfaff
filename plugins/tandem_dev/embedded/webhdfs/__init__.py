"""An embedded HDFS that speaks the WebHDFS REST protocol, for the demo and the tests.

:class:`WebHdfsServer` runs two HTTP/1.1 listeners on 127.0.0.1, like a one-node cluster:

* the **NameNode** port answers every metadata operation and redirects data operations
  (``CREATE``, ``APPEND``, ``OPEN``, ``GETFILECHECKSUM``) with ``307 Temporary Redirect`` (or
  ``200 {"Location": ...}`` with ``noredirect=true``) to
* the **DataNode** port, which takes the bytes (``201 Created`` for CREATE, 200 for APPEND, with
  Content-Length or chunked bodies) and streams them out for OPEN with ``sendfile``.

Everything follows Hadoop's WebHDFS.md and the server code (``JsonUtil``, ``ExceptionHandler``,
``NamenodeWebHdfsMethods``), not any one client: JSON shapes, parameter names (case-insensitive,
as Hadoop's ``ParamFilter`` makes them), ``RemoteException`` bodies and HTTP codes (404
FileNotFoundException, 400 IllegalArgumentException and bad parameters, 403 other IOExceptions).
The filesystem semantics live in :class:`tandem_dev.embedded.namespace.Namespace`.

Authentication is Hadoop's: none by default (``user.name``/``doas`` are trusted, as on a cluster
with security off), or with ``kerberos`` (a :class:`~tandem_dev.embedded.spnego.Spnego`) SPNEGO on
the NameNode, delegation tokens on the DataNode and ``doas`` for proxy users only. Permissions
are recorded but not enforced (``dfs.permissions.enabled=false``), except by the
extended-attribute operations (SETXATTR, REMOVEXATTR, GETXATTRS, LISTXATTRS), which check them
as a Hadoop 3 NameNode does. Paths are
still confined: ``..``, ``.``, encoded slashes, NUL and the other names HDFS refuses are rejected
with 400, and no HDFS path ever maps to a local path (see :mod:`tandem_dev.embedded.store`).

The package is laid out as Hadoop's WebHDFS server: :mod:`.server` is the HTTP plumbing (listeners,
connections, authentication, dispatch), :mod:`.protocol` and :mod:`.params` the request, its
parameters and the response, :mod:`.jsonutil` the JSON bodies, and one module per family of
operations holds its handlers and their table: :mod:`.reads`, :mod:`.writes`, :mod:`.data` (the
redirected data path, both halves), :mod:`.xattr_ops`, :mod:`.snapshot_ops`.
"""

from __future__ import annotations

from tandem_dev.embedded.webhdfs.server import WebHdfsServer

__all__ = ["WebHdfsServer"]
