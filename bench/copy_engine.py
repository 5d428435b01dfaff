"""The copy engine against the speed of the clusters it copies between, in one run.

    .venv/bin/python bench/copy_engine.py [--json] [--quick] [--dir DIR]

(Issue 12 calls it ``bench/copy.py``; that name would be the standard library's ``copy`` for every
script in ``bench/``, which Python runs with this directory first on its path.)

Two embedded WebHDFS servers, each in its own process (``python -m tandem_dev.embedded.webhdfs``),
stand for the source and the target cluster. In one run, with the same number of threads on
both sides of each comparison:

* the servers' own rates through plain HTTP WebHDFS calls (``requests``: CREATE and OPEN with
  their 307 redirects, nothing else): writing the files to the source, reading them back from
  it, writing them to the target. The rate a copy could reach is the slower of the source's read
  and the target's write;
* the full copy engine (:class:`tandem.copy.webhdfs.WebHdfsCopier`: stream, verify by length and
  checksum, set metadata) copying the same files from the source to the target;

for large files (4 of 256 MiB, 4 threads; ``--quick``: 4 of 64 MiB) and 8 KiB files (2,000,
8 threads; ``--quick``: 500). ``large_copy_over_server`` and ``small_copy_over_server`` are the
engine's rate over the servers' slower rate (targets: at least 0.8 and 0.6).

Memory: one file of 1 GiB (``--quick``: 256 MiB) and one of 4 MiB are each copied by the engine in
a child process, whose peak RSS is read from ``wait4``; ``copy_peak_rss_mb`` is the larger file's
(it should equal the small one's: streaming holds a chunk, never a file).

``--json`` prints exactly ``large_copy_over_server``, ``small_copy_over_server`` and
``copy_peak_rss_mb``, plus ``rates`` (MB/s, files/s) and ``peak_rss_mb`` (per file size).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

MIB = 1 << 20
CHUNK = MIB
USER = "hdfs"


@dataclass(frozen=True)
class Sizes:
    large_files: int
    large_size: int
    small_files: int
    small_size: int
    rss_large: int
    rss_small: int = 4 * MIB
    large_threads: int = 4
    small_threads: int = 8


FULL = Sizes(4, 256 * MIB, 2000, 8 << 10, 1 << 30)
QUICK = Sizes(4, 64 * MIB, 500, 8 << 10, 256 * MIB)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def server(root: Path) -> Iterator[str]:
    """An embedded WebHDFS server over ``root`` in its own process; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tandem_dev.embedded.webhdfs", "--root", str(root), "--superuser", USER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise SystemExit("the WebHDFS server did not start")
        yield str(json.loads(line)["url"])
    finally:
        process.terminate()
        process.wait(30)


class Plain:
    """Plain WebHDFS over HTTP with one pooled session: what any client must at least do."""

    def __init__(self, url: str, threads: int) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=threads)
        self.session.mount("http://", adapter)

    def _nn(self, path: str, op: str, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"op": op, "user.name": USER, **params}.items())
        return f"{self.url}/webhdfs/v1{path}?{query}"

    def write(self, path: str, size: int, block: bytes) -> None:
        """CREATE: the NameNode's redirect, then the bytes to the DataNode (streamed, chunked)."""
        answer = self.session.put(self._nn(path, "CREATE", overwrite="true"), allow_redirects=False)
        answer.raise_for_status()
        location = answer.headers["Location"]
        if size <= len(block):
            body: bytes | Iterator[bytes] = block[:size]
        else:
            body = (block[: min(len(block), size - sent)] for sent in range(0, size, len(block)))
        self.session.put(location, data=body).raise_for_status()

    def read(self, path: str) -> int:
        """OPEN, following the redirect, the body streamed and dropped; returns its length."""
        with self.session.get(self._nn(path, "OPEN"), stream=True) as answer:
            answer.raise_for_status()
            return sum(len(chunk) for chunk in answer.iter_content(CHUNK))


def timed(threads: int, func: Callable[[int], Any], count: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(func, range(count)))
    return time.perf_counter() - started


def hdfs_of(url: str) -> Any:
    from hdfs import InsecureClient

    from tandem.hdfs.client import Hdfs

    return Hdfs(InsecureClient(url, user=USER))


def engine_copy(src_url: str, dst_url: str, paths: Sequence[str], target_top: str, threads: int) -> float:
    """The copy engine, every file verified and given its metadata; returns the seconds."""
    from tandem.copy.webhdfs import FileCopy, WebHdfsCopier

    src, dst = hdfs_of(src_url), hdfs_of(dst_url)
    items = [FileCopy(p, f"{target_top}{p}", src.status(p)) for p in paths]
    copier = WebHdfsCopier(src, dst, parallelism=threads)
    started = time.perf_counter()
    copier.copy_files(items, label=f"copy to {target_top}")
    return time.perf_counter() - started


def measure(src_url: str, dst_url: str, name: str, count: int, size: int, threads: int) -> dict[str, float]:
    """Server write (source), read (source), write (target), then the engine's copy, of one set."""
    block = os.urandom(min(size, CHUNK))
    source, target = Plain(src_url, threads), Plain(dst_url, threads)
    paths = [f"/{name}/f-{i:05d}" for i in range(count)]
    write_src = timed(threads, lambda i: source.write(paths[i], size, block), count)
    read_src = timed(threads, lambda i: source.read(paths[i]), count)
    write_dst = timed(threads, lambda i: target.write(f"/raw{paths[i]}", size, block), count)
    copy = engine_copy(src_url, dst_url, paths, "/copy", threads)
    total = count * size
    rates = {
        "source_write": total / write_src,
        "source_read": total / read_src,
        "target_write": total / write_dst,
        "copy": total / copy,
    }
    server_rate = min(rates["source_read"], rates["target_write"])
    log(
        f"{name}: {count} x {size / MIB:g} MiB, {threads} threads: "
        + ", ".join(f"{k} {v / 1e6:.1f} MB/s" for k, v in rates.items())
        + f" ({count / copy:.0f} files/s copied)"
    )
    return {
        **{k: round(v / 1e6, 2) for k, v in rates.items()},
        "copy_over_server": copy and total / copy / server_rate,
    }


def peak_rss_mb(src_url: str, dst_url: str, size: int) -> float:
    """Peak RSS of a child process that copies one file of ``size`` bytes with the engine."""
    path = f"/rss/f-{size}"
    Plain(src_url, 1).write(path, size, os.urandom(CHUNK))
    process = subprocess.Popen([sys.executable, "-c", CHILD, src_url, dst_url, path])
    _pid, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"the copy of {size} bytes in a child process failed ({status})")
    return round(usage.ru_maxrss / 1024, 1)  # ru_maxrss is in KiB on Linux


# the engine copying one file, as a copy task would, in a fresh process
CHILD = """
import sys
from hdfs import InsecureClient
from tandem.copy.webhdfs import FileCopy, WebHdfsCopier
from tandem.hdfs.client import Hdfs
src, dst = (Hdfs(InsecureClient(url, user="hdfs")) for url in sys.argv[1:3])
path = sys.argv[3]
WebHdfsCopier(src, dst, parallelism=1).copy_files([FileCopy(path, "/rss-copy" + path, src.status(path))])
"""


def run(work: Path, sizes: Sizes) -> dict[str, Any]:
    with ExitStack() as stack:
        src_url = stack.enter_context(server(work / "source"))
        dst_url = stack.enter_context(server(work / "target"))
        large = measure(src_url, dst_url, "large", sizes.large_files, sizes.large_size, sizes.large_threads)
        small = measure(src_url, dst_url, "small", sizes.small_files, sizes.small_size, sizes.small_threads)
        rss = {
            f"{size // MIB} MiB": peak_rss_mb(src_url, dst_url, size)
            for size in (sizes.rss_large, sizes.rss_small)
        }
    log(f"peak RSS of a one-file copy: {rss}")
    return {
        "large_copy_over_server": round(large.pop("copy_over_server"), 3),
        "small_copy_over_server": round(small.pop("copy_over_server"), 3),
        "copy_peak_rss_mb": rss[f"{sizes.rss_large // MIB} MiB"],
        "rates": {"large_MB_s": large, "small_MB_s": small},
        "peak_rss_mb": rss,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller files and fewer of them")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.dir is not None:
        Path(args.dir).mkdir(parents=True, exist_ok=True)  # a --dir that does not exist yet is made
    work = Path(tempfile.mkdtemp(prefix="tandem-copy-bench-", dir=args.dir))
    try:
        result = run(work, sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"large files: copy / slower of source read and target write  {result['large_copy_over_server']:.2f}"
        " (target >= 0.8)"
    )
    print(
        f"8 KiB files: copy / slower of source read and target write  {result['small_copy_over_server']:.2f}"
        " (target >= 0.6)"
    )
    rss = ", ".join(f"{k}: {v:.0f} MB" for k, v in result["peak_rss_mb"].items())
    print(f"peak RSS of a one-file copy: {rss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
