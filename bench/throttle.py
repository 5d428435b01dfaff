"""The copy engine's bandwidth limit (``copy: {max_bandwidth: ...}``), measured in one run.

    .venv/bin/python bench/throttle.py [--json]

On the embedded clusters, copies the same 32 MiB (8 files of 4 MiB, 4 threads) without a limit
and with ``max_bandwidth`` 8MB/s, and prints ``{"bytes", "limit_bps", "unthrottled_s",
"throttled_s", "throttled_over_expected"}``: the throttled copy should take its bytes over the
limit (target: within 10%, i.e. a ratio between 0.9 and 1.1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from tandem.copy.webhdfs import FileCopy, WebHdfsCopier
from tandem.policy import load_topology
from tandem.runtime import Clusters
from tandem_dev.embedded import manager

PROJECT = Path(__file__).resolve().parents[1]
FILES, SIZE, LIMIT = 8, 4 << 20, 8_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tandem-throttle-") as tmp:
        home = Path(tmp) / "home"
        embedded = manager.up(home)
        try:
            os.environ.update(manager.connection_env(embedded))
            clusters = Clusters(load_topology(PROJECT / "include" / "clusters.yaml"))
            src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
            for i in range(FILES):
                src.write(f"/bench/throttle/f-{i}", os.urandom(SIZE))
            items = [
                FileCopy(
                    f"/bench/throttle/f-{i}", f"/bench/throttle/f-{i}", src.status(f"/bench/throttle/f-{i}")
                )
                for i in range(FILES)
            ]  # type: ignore[arg-type]
            timings = {}
            for label, limit in (("unthrottled_s", None), ("throttled_s", LIMIT)):
                copier = WebHdfsCopier(src, dst, parallelism=4, max_bandwidth=limit)
                began = time.monotonic()
                copier.copy_files(items, label=label)
                timings[label] = round(time.monotonic() - began, 2)
        finally:
            manager.down(home)
    expected = FILES * SIZE / LIMIT
    result = {
        "bytes": FILES * SIZE,
        "limit_bps": LIMIT,
        **timings,
        "throttled_over_expected": round(timings["throttled_s"] / expected, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
        ratio = result["throttled_over_expected"]
        print(f"within 10% of bytes/limit ({expected:.2f} s): {'met' if 0.9 <= ratio <= 1.1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
