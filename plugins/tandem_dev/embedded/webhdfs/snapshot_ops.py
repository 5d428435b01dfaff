"""Snapshots over WebHDFS: ALLOWSNAPSHOT to DELETESNAPSHOT, the lists and the diffs."""

from __future__ import annotations

from tandem_dev.embedded.webhdfs.jsonutil import diff_json, snapshot_json, snapshottable_json
from tandem_dev.embedded.webhdfs.params import long_param, required_param
from tandem_dev.embedded.webhdfs.protocol import Handler, Request, Response, empty_response, json_response


def _snapshot_diff(req: Request) -> Response:
    old = req.params.get("oldsnapshotname")
    new = req.params.get("snapshotname")
    return json_response(diff_json(req.ns.snapshot_diff(req.parts, old, new)))


def _snapshot_diff_listing(req: Request) -> Response:
    """One batch holds the whole diff: ``lastPath`` "" with ``lastIndex`` -1 tells the client it is done."""
    long_param(req, "snapshotdiffindex", -1, minimum=-1)
    listing, from_earlier = req.ns.snapshot_diff_listing(
        req.parts, req.params.get("oldsnapshotname"), req.params.get("snapshotname")
    )
    return json_response(
        {
            "SnapshotDiffReportListing": {
                "createList": [e.to_json() for e in listing.created],
                "deleteList": [e.to_json() for e in listing.deleted],
                "isFromEarlier": from_earlier,
                "lastIndex": -1,
                "lastPath": "",
                "modifyList": [e.to_json() for e in listing.modified],
            }
        }
    )


def _snapshot_list(req: Request) -> Response:
    return json_response({"SnapshotList": [snapshot_json(s) for s in req.ns.snapshot_list(req.parts)]})


def _snapshottable_list(req: Request) -> Response:
    items = req.ns.snapshottable_list(req.user)
    return json_response(
        {"SnapshottableDirectoryList": None if items is None else [snapshottable_json(i) for i in items]}
    )


def _allow_snapshot(req: Request) -> Response:
    req.ns.allow_snapshot(req.parts)
    return empty_response()


def _disallow_snapshot(req: Request) -> Response:
    req.ns.disallow_snapshot(req.parts)
    return empty_response()


def _create_snapshot(req: Request) -> Response:
    return json_response({"Path": req.ns.create_snapshot(req.parts, req.params.get("snapshotname") or None)})


def _rename_snapshot(req: Request) -> Response:
    req.ns.rename_snapshot(
        req.parts, required_param(req, "oldsnapshotname"), required_param(req, "snapshotname")
    )
    return empty_response()


def _delete_snapshot(req: Request) -> Response:
    req.ns.delete_snapshot(req.parts, required_param(req, "snapshotname"))
    return empty_response()


# snapshots
SNAPSHOT_OPS: dict[tuple[str, str], Handler] = {
    ("GET", "GETSNAPSHOTDIFF"): _snapshot_diff,
    ("GET", "GETSNAPSHOTDIFFLISTING"): _snapshot_diff_listing,
    ("GET", "GETSNAPSHOTLIST"): _snapshot_list,
    ("GET", "GETSNAPSHOTTABLEDIRECTORYLIST"): _snapshottable_list,
    ("PUT", "ALLOWSNAPSHOT"): _allow_snapshot,
    ("PUT", "DISALLOWSNAPSHOT"): _disallow_snapshot,
    ("PUT", "CREATESNAPSHOT"): _create_snapshot,
    ("PUT", "RENAMESNAPSHOT"): _rename_snapshot,
    ("DELETE", "DELETESNAPSHOT"): _delete_snapshot,
}
