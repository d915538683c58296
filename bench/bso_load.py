"""Load test of the BSO server over loopback HTTP: throughput, latency per endpoint, server CPU.

Starts `zeus serve` as a subprocess (SQLite in a temp dir by default, or ``--database-url``, or a
throwaway PostgreSQL with ``--postgres``), then runs K concurrent recurring jobs, each looping
register -> batch_size -> reports until told to stop -> ..., over one keep-alive connection per job
(a minimal HTTP/1.1 client on asyncio, so the load generator stays cheap next to the server).
Bounded in time (``--seconds`` per K) and count (``--max-requests`` per K). Linux only (/proc).

    .venv/bin/python bench/bso_load.py                      # K = 1, 8, 64 on SQLite, one worker
    .venv/bin/python bench/bso_load.py --postgres --workers 2
    .venv/bin/python bench/bso_load.py --policy pruning-gts  # default: the server's (local-search-ts)
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

CLK_TCK = os.sysconf("SC_CLK_TCK")
BATCH_SIZES = [32, 64, 128, 256, 512]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ server process


def tree_cpu_s(root_pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.split("/")[2])
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(times.get(pid, 0.0) for pid in tree)


@contextmanager
def zeus_server(
    database_url: str, workers: int, log: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    cmd = [sys.executable, "-c", "from zeus.cli import main; main()", "serve"]
    cmd += ["--port", str(port), "--database-url", database_url, "--workers", str(workers)]
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        time.sleep(0.5 if workers == 1 else 2.0)  # let every worker finish starting
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """initdb + pg_ctl in a temp dir on a free loopback port (as `postgres` when run as root)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit(
            "no PostgreSQL binaries under /usr/lib/postgresql (scripts/install-services.sh)"
        )
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="zeus-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log")]
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(root / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
        ],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run([*pg_ctl, "-o", opts, "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------- HTTP client


class Connection:
    """One keep-alive HTTP/1.1 connection; JSON in, (status, JSON) out."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)  # no Content-Type, like existing clients
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length)
        return status, json.loads(data) if data else None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Recorder:
    def __init__(self, max_requests: int, deadline: float) -> None:
        self.t0 = time.perf_counter()
        self.latency_s: dict[str, list[tuple[float, float]]] = defaultdict(list)  # (start, s)
        self.errors: list[str] = []
        self.count = 0
        self.max_requests = max_requests
        self.deadline = deadline

    def done(self) -> bool:
        return self.count >= self.max_requests or time.perf_counter() >= self.deadline

    async def call(
        self, conn: Connection, name: str, method: str, path: str, body: object = None
    ) -> object:
        start = time.perf_counter()
        status, answer = await conn.request(method, path, body)
        self.latency_s[name].append((start - self.t0, time.perf_counter() - start))
        self.count += 1
        if status >= 300:
            self.errors.append(f"{name} {status} {answer}")
        return answer


async def recurring_job(
    port: int, job_id: str, rec: Recorder, seed: int, policy: str | None
) -> None:
    """register -> batch_size -> reports until stop -> ... until the run's bound."""
    rng = np.random.default_rng(seed)
    spec: dict[str, object] = {
        "job_id": job_id,
        "job_id_prefix": "bench",
        "batch_sizes": BATCH_SIZES,
        "default_batch_size": 128,
        "max_epochs": 20,
        "target_metric": 0.9,
        "mab_seed": seed,
        "max_power": 300.0,
        "number_of_gpus": 1,
        "gpu_model": "NVIDIA A40",
    }
    if policy is not None:
        spec["policy"] = policy
    conn = Connection(port)
    try:
        while not rec.done():
            await rec.call(conn, "register", "POST", "/jobs", spec)
            trial = await rec.call(conn, "batch_size", "GET", f"/jobs/batch_size?job_id={job_id}")
            if not isinstance(trial, dict) or "trial_number" not in trial:
                return
            epochs_to_target = int(rng.integers(3, 8))
            epoch_s = 60.0 * (1 + abs(np.log2(trial["batch_size"] / 128))) * rng.uniform(0.9, 1.1)
            for epoch in range(1, 21):
                metric = 0.95 if epoch >= epochs_to_target else 0.5
                body = {
                    **trial,
                    "time": epoch * epoch_s,
                    "energy": epoch * epoch_s * 250.0,
                    "metric": metric,
                    "current_epoch": epoch,
                }
                answer = await rec.call(conn, "report", "POST", "/report", body)
                if not isinstance(answer, dict) or answer.get("stop_train", True) or rec.done():
                    break
    finally:
        conn.close()


def run_load(
    port: int,
    server_pid: int,
    jobs: int,
    seconds: float,
    max_requests: int,
    tag: str,
    warmup_s: float = 1.0,
    policy: str | None = None,
) -> dict[str, object]:
    rec = Recorder(max_requests, time.perf_counter() + seconds)
    cpu_before = tree_cpu_s(server_pid)
    start = time.perf_counter()

    async def main() -> None:
        await asyncio.gather(
            *(recurring_job(port, f"bench-{tag}-{jobs}-{i}", rec, i, policy) for i in range(jobs))
        )

    try:
        import uvloop  # a cheaper event loop keeps the load generator's CPU away from the server

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    wall_s = time.perf_counter() - start
    cpu_s = tree_cpu_s(server_pid) - cpu_before
    result: dict[str, object] = {
        "K": jobs,
        "requests": rec.count,
        "errors": len(rec.errors),
        "req_per_s": rec.count / wall_s,
        "cpu_ms_per_req": 1e3 * cpu_s / max(rec.count, 1),
    }
    everything = [lat for samples in rec.latency_s.values() for _, lat in samples]
    result["p99_all_ms"] = float(np.percentile(np.array(everything) * 1e3, 99))
    for name, samples in rec.latency_s.items():
        steady = [lat for start, lat in samples if start >= warmup_s] or [lat for _, lat in samples]
        ms = np.array(steady) * 1e3
        result[name] = (float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(steady))
    if rec.errors:
        result["first_errors"] = rec.errors[:3]
    return result


def print_table(rows: list[dict[str, object]], title: str) -> None:
    print(f"\n{title}")
    print(
        f"{'K':>3} {'requests':>8} {'err':>4} {'req/s':>7} {'CPU ms/req':>10} {'p99 all':>8}   "
        "after warm-up, p50/p99 ms: register | batch_size | report"
    )
    for r in rows:
        cells = []
        for name in ("register", "batch_size", "report"):
            p50, p99, _ = r.get(name, (float("nan"), float("nan"), 0))  # type: ignore[misc]
            cells.append(f"{p50:5.1f}/{p99:6.1f}")
        print(
            f"{r['K']:>3} {r['requests']:>8} {r['errors']:>4} {r['req_per_s']:>7.0f} "
            f"{r['cpu_ms_per_req']:>10.2f} {r['p99_all_ms']:>8.1f}   {' | '.join(cells)}"
        )
        if "first_errors" in r:
            print("    errors:", r["first_errors"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", default="1,8,64", help="comma-separated K values")
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound per K")
    parser.add_argument("--max-requests", type=int, default=30_000, help="request bound per K")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--warmup-s", type=float, default=1.0, help="left out of the per-endpoint percentiles"
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL")
    parser.add_argument("--policy", default=None, help="the jobs' policy (default: the server's)")
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zeus-bso-bench-")))
        url = args.database_url or f"sqlite:///{tmp / 'bso.db'}"
        if args.postgres:
            url = stack.enter_context(throwaway_postgres())
        port, process = stack.enter_context(zeus_server(url, args.workers, tmp / "server.log"))
        tag = f"{os.getpid()}"
        rows = [
            run_load(
                port,
                process.pid,
                int(k),
                args.seconds,
                args.max_requests,
                tag,
                args.warmup_s,
                args.policy,
            )
            for k in args.jobs.split(",")
        ]
        backend = url.split(":", 1)[0]
        print_table(
            rows,
            f"BSO server load: {backend}, {args.workers} worker(s), "
            f"policy {args.policy or 'the server default'}, "
            f"{os.cpu_count()} CPUs, bound {args.seconds:g} s / {args.max_requests} requests per K",
        )
        worst = max(r["batch_size"][1] for r in rows)  # type: ignore[index]
        print(
            f"worst p99 of batch_size: {worst:.1f} ms; "
            f"total errors: {sum(int(r['errors']) for r in rows)}"
        )  # type: ignore[call-overload]


if __name__ == "__main__":
    main()
