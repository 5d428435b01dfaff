"""``python -m tandem_dev.embedded.webhdfs``: one embedded WebHDFS server in the foreground."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from tandem_dev.embedded.webhdfs.server import WebHdfsServer


def main(argv: list[str] | None = None) -> int:
    """Run a server in the foreground: prints one JSON line with the ports, stops on SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tandem_dev.embedded.webhdfs", description=main.__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-port", type=int, default=0)
    parser.add_argument("--superuser")
    parser.add_argument("--replication", type=int, default=1)
    args = parser.parse_args(argv)
    server = WebHdfsServer(
        args.root,
        host=args.host,
        port=args.port,
        data_port=args.data_port,
        superuser=args.superuser,
        replication=args.replication,
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server.start()
    print(json.dumps({"url": server.url, "port": server.port, "data_port": server.data_port}), flush=True)
    try:
        stopping.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
