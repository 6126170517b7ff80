#!/usr/bin/env python3
"""Worker throughput: N distinct poster jobs through `regard worker` processes, timed from the
first enqueue to the last analysis committed in PostgreSQL. Prints a Markdown table.

Needs the local RabbitMQ and PostgreSQL (the same ones the tests use), `psql` and
`rabbitmqctl`. Each configuration gets a fresh database; the queues use one unique prefix and
are deleted at the end.

    cargo build --release
    python3 scripts/bench_worker.py --jobs 200 --configs 1x1,2x1,1x2

A configuration `WxS` runs W worker processes with S job slots each; ONNX Runtime threads per
slot are cores / (W x S), at least 1, so that the whole never asks for more threads than cores.
The jobs are copies of one fixture poster that differ only by a JPEG comment: same pixels and
faces, different content hash, so the store keeps one analysis per job.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AMQP = os.environ.get("REGARD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
PG_ADMIN = os.environ.get("REGARD_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def psql(url, sql):
    out = subprocess.run(
        ["psql", url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def db_url(name):
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def variants(poster, directory, n):
    data = poster.read_bytes()
    if data[:2] != b"\xff\xd8":
        sys.exit(f"{poster} is not a JPEG")
    paths = []
    for i in range(n):
        text = f"regard bench variant {i}".encode()
        segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
        path = directory / f"variant-{i:04}.jpg"
        path.write_bytes(data[:2] + segment + data[2:])
        paths.append(path)
    return paths


def ready(port, proc, log, limit=120):
    until = time.monotonic() + limit
    while time.monotonic() < until:
        if proc.poll() is not None:
            sys.exit(f"worker exited with {proc.returncode}:\n{Path(log).read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"worker not ready after {limit} s:\n{Path(log).read_text()}")


def run_config(binary, env, workers, slots, csv_path, n, logs, cores, timeout):
    name = f"regard_bench_{uuid.uuid4().hex[:12]}"
    psql(PG_ADMIN, f"CREATE DATABASE {name}")
    url = db_url(name)
    threads = max(1, cores // (workers * slots))
    procs = []
    try:
        for k in range(workers):
            port = free_port()
            log = logs / f"{name}-{k}.log"
            wenv = dict(env, REGARD_DATABASE_URL=url, REGARD_HTTP_LISTEN=f"127.0.0.1:{port}",
                        REGARD_JOB_SLOTS=str(slots), REGARD_ORT_THREADS=str(threads))
            p = subprocess.Popen([binary, "worker"], cwd=ROOT, env=wenv,
                                 stdout=subprocess.DEVNULL, stderr=open(log, "w"))
            procs.append((p, port, log))
        for p, port, log in procs:
            ready(port, p, log)
        started = time.monotonic()
        subprocess.run([binary, "enqueue", "--file", str(csv_path)], cwd=ROOT, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        until = started + timeout
        done = 0
        while done < n:
            if time.monotonic() > until:
                sys.exit(f"{workers}x{slots}: {done} of {n} analyses after {timeout} s")
            time.sleep(0.2)
            done = int(psql(url, "SELECT count(*) FROM regard.analysis WHERE status = 'succeeded'"))
        elapsed = time.monotonic() - started
        failed = int(psql(url, "SELECT count(*) FROM regard.analysis WHERE status = 'failed'"))
        mean = psql(url, "SELECT round(avg((stage_timings_s->>'analyse')::numeric), 3) "
                         "FROM regard.analysis")
        return elapsed, failed, threads, float(mean)
    finally:
        for p, _, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, _, log in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                print(f"worker did not stop in 60 s; killed (log: {log})", file=sys.stderr)
        psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def delete_topology(prefix):
    names = subprocess.run(["rabbitmqctl", "list_queues", "-q", "name"],
                           capture_output=True, text=True).stdout.split()
    for q in names:
        if q.startswith(prefix + "."):
            subprocess.run(["rabbitmqctl", "delete_queue", "-q", q], capture_output=True)
    exchanges = subprocess.run(["rabbitmqctl", "list_exchanges", "-q", "name"],
                               capture_output=True, text=True).stdout.split()
    for e in exchanges:
        if e.startswith(prefix + "."):
            term = f'rabbit_exchange:delete(rabbit_misc:r(<<"/">>, exchange, <<"{e}">>), false, <<"bench">>).'
            subprocess.run(["rabbitmqctl", "eval", term], capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--configs", default="1x1,2x1,1x2",
                    help="comma-separated WORKERSxSLOTS, e.g. 1x1,2x1")
    ap.add_argument("--binary", default=str(ROOT / "target/release/regard"))
    ap.add_argument("--poster", default=str(ROOT / "fixtures/posters/duo_1000x1500.jpg"))
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    if not Path(args.binary).exists():
        sys.exit(f"{args.binary} missing: run `cargo build --release` first")
    configs = []
    for c in args.configs.split(","):
        w, s = c.lower().split("x")
        configs.append((int(w), int(s)))
    cores = os.cpu_count() or 2
    prefix = f"regard-bench-{uuid.uuid4().hex[:8]}"

    with tempfile.TemporaryDirectory(prefix="regard-bench-") as tmp:
        tmp = Path(tmp)
        media = tmp / "media"
        media.mkdir()
        logs = tmp / "logs"
        logs.mkdir()
        files = variants(Path(args.poster), media, args.jobs)
        csv_path = tmp / "jobs.csv"
        with open(csv_path, "w") as f:
            f.write("kind,source,title\n")
            for i, p in enumerate(files):
                f.write(f"poster,{p},Bench {i}\n")
        env = dict(os.environ, REGARD_AMQP_URL=AMQP, REGARD_QUEUE_PREFIX=prefix,
                   REGARD_MEDIA_ROOTS=str(media), REGARD_LOG="warn,regard=warn")
        env.pop("REGARD_ALLOW_PRIVATE", None)
        subprocess.run([args.binary, "queue", "setup"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        rows = []
        try:
            for workers, slots in configs:
                elapsed, failed, threads, mean = run_config(
                    args.binary, env, workers, slots, csv_path, args.jobs, logs, cores,
                    args.timeout)
                rows.append((workers, slots, threads, elapsed, args.jobs / elapsed, mean, failed))
                print(f"{workers} worker(s) x {slots} slot(s): {args.jobs / elapsed:.2f} jobs/s",
                      file=sys.stderr)
        finally:
            delete_topology(prefix)

    poster = Path(args.poster).relative_to(ROOT) if Path(args.poster).is_relative_to(ROOT) else args.poster
    print(f"\n{args.jobs} poster jobs ({poster}, distinct bytes), {cores} cores, "
          f"{Path(args.binary).relative_to(ROOT) if Path(args.binary).is_relative_to(ROOT) else args.binary}\n")
    print("| workers | slots each | ORT threads per slot | wall time (s) | jobs/s | mean analysis per job (s) | failed |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for w, s, t, e, r, m, f in rows:
        print(f"| {w} | {s} | {t} | {e:.1f} | {r:.2f} | {m:.3f} | {f} |")


if __name__ == "__main__":
    main()
