"""Throughput figures for Tidings: one command builds the data and prints figures.

    .venv/bin/python bench/run.py --db sqlite --customers 100000
    .venv/bin/python bench/run.py --db postgresql --customers 1000000 --processes 2 --dkim

Sends into Postfix's ``smtp-sink`` on loopback (Debian package ``postfix``) and
times Postfix's own ``smtp-source`` into the same sink for the same number of
4 KB messages, so every figure is also a ratio to what SMTP on this machine
allows. Prints one ``name: value`` line per figure.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tidings.config import Settings  # noqa: E402
from tidings.services import audience, mailings  # noqa: E402
from tidings.services import templates as template_service  # noqa: E402
from tidings.services.context import Context  # noqa: E402
from tidings.store.db import make_engine, migrate  # noqa: E402
from tidings.store.tables import mailings as mailing_table  # noqa: E402

PARAGRAPH = ("<p>Dear {{ customer.first_name }}, our new collection has arrived. "
             "Every piece is made by hand in small workshops and shipped within two days. "
             "Members get free returns for 60 days and early access to sales.</p>\n")
HTML = ("<html><head><style>p { font-family: Georgia, serif; color: #333; }</style></head><body>\n"
        "<h1>Hello {{ customer.first_name }} {{ customer.last_name }}!</h1>\n"
        + PARAGRAPH * 8
        + "".join(f'<p><a href="https://shop.example.com/item/{i}?ref=mail">Item {i}</a></p>\n'
                  for i in range(5))
        + '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def figure(name: str, value: object, unit: str = "") -> None:
    print(f"{name}: {value}{(' ' + unit) if unit else ''}", flush=True)


def fresh_database(kind: str, workdir: Path) -> tuple[str, object]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}", None
    name = f"tidings_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


class Sink:
    """Postfix's smtp-sink on a free loopback port."""

    def __init__(self) -> None:
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not os.path.exists(exe):
            sys.exit("smtp-sink not found: apt-get install postfix")
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen([exe, *user, f"127.0.0.1:{self.port}", "1024"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def smtp_source(port: int, n: int, sessions: int = 16) -> float:
    exe = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    start = time.perf_counter()
    subprocess.run([exe, "-s", str(sessions), "-m", str(n), "-l", "4096", "-d",
                    "-f", "bench@shop.example.com", "-t", "c@example.org", f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return n / (time.perf_counter() - start)


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return found


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def csv_bytes(n: int, offset: int = 0) -> bytes:
    out = io.StringIO()
    out.write("email,first_name,last_name,city\n")
    for i in range(offset, offset + n):
        out.write(f"c{i}@example.org,First{i % 97},Last{i % 89},City{i % 13}\n")
    return out.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=1, help="sending processes (tidings worker)")
    parser.add_argument("--connections", type=int, default=8, help="SMTP connections per process")
    parser.add_argument("--dkim", action="store_true", help="sign with DKIM (RSA-2048)")
    parser.add_argument("--skip-api-import", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    url, drop = fresh_database(args.db, workdir)
    sink = Sink()
    figure("machine", f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {args.db}")
    try:
        migrate(url)
        settings = Settings(_env_file=None, database_url=url, smtp_url=f"smtp://127.0.0.1:{sink.port}",
                            secret_key="bench-secret-key-at-least-32-characters", require_verified_domain=args.dkim,
                            smtp_connections=args.connections)
        ctx = Context(settings=settings, engine=make_engine(url))
        n = args.customers

        # -- import
        half = n // 2 if not args.skip_api_import else 0
        start = time.perf_counter()
        audience.import_csv(ctx, csv_bytes(n - half))
        elapsed = time.perf_counter() - start
        figure("import_csv_customers_per_s", round((n - half) / elapsed))
        if half:
            batch = 10_000
            start = time.perf_counter()
            for lo in range(n - half, n, batch):
                audience.upsert_customers(ctx, [
                    {"email": f"c{i}@example.org", "first_name": f"First{i % 97}",
                     "last_name": f"Last{i % 89}", "attributes": {"city": f"City{i % 13}"}}
                    for i in range(lo, min(n, lo + batch))])
            figure("import_api_customers_per_s", round(half / (time.perf_counter() - start)))

        segment = audience.create_segment(ctx, {"name": "all", "rules": {}})
        start = time.perf_counter()
        count = audience.count_segment(ctx, segment["id"])
        figure("segment_count_s", round(time.perf_counter() - start, 3), f"({count['count']} customers)")

        template = template_service.create_template(ctx, {"name": "bench", "channel": "email",
                                                 "subject": "News for {{ customer.first_name }}",
                                                 "html": HTML})
        from_email = "news@shop.example.com"
        dns = None
        if args.dkim:
            # Publish the domain's records on a DNS server on loopback and verify it,
            # exactly as a shop would; every message is then DKIM-signed.
            from tests.dnsserver import LocalDns

            from tidings.services import domains as domain_service

            dns = LocalDns().__enter__()
            ctx.settings = settings = settings.model_copy(update={"dns_server": dns.address})
            created = domain_service.create(ctx, {"domain": "shop.example.com"})
            for record in created["records"]:
                dns.set_txt(record["name"], record["value"])
            assert domain_service.verify(ctx, created["id"])["verified"]
        mailing = mailings.create(ctx, {"name": "bench", "segment_id": segment["id"],
                                        "template_id": template["id"], "from_email": from_email})

        start = time.perf_counter()
        mailings.send_now(ctx, mailing["id"])
        figure("audience_freeze_s", round(time.perf_counter() - start, 2), f"({n} messages)")

        env = {**os.environ, "TIDINGS_DATABASE_URL": url, "TIDINGS_DNS_SERVER": settings.dns_server or "",
               "TIDINGS_SMTP_URL": settings.smtp_url,
               "TIDINGS_SECRET_KEY": "bench-secret-key-at-least-32-characters", "TIDINGS_SMTP_CONNECTIONS": str(args.connections),
               "TIDINGS_REQUIRE_VERIFIED_DOMAIN": str(args.dkim).lower(), "TIDINGS_POLL_INTERVAL": "0.2",
               "TIDINGS_LOG_LEVEL": "WARNING"}
        exe = str(Path(sys.executable).with_name("tidings"))
        latencies: list[float] = []
        stop = threading.Event()

        peak_rss = 0.0  # the largest worker process, sampled while sending

        def poll() -> None:
            nonlocal peak_rss
            while not stop.is_set():
                t0 = time.perf_counter()
                mailings.get(ctx, mailing["id"])
                latencies.append(time.perf_counter() - t0)
                for w in workers:
                    peak_rss = max([peak_rss, *(rss_mb(p) for p in descendants(w.pid))])
                stop.wait(0.5)

        start = time.perf_counter()
        workers = [subprocess.Popen([exe, "worker", "--processes", str(args.processes)],
                                    env=env, cwd=workdir)]
        poller = threading.Thread(target=poll)
        poller.start()
        status = sa.select(mailing_table.c.status).where(mailing_table.c.id == mailing["id"])
        while True:  # the status alone: the harness must not take CPU from the workers it times
            with ctx.read() as conn:
                if conn.execute(status).scalar_one() != "sending":
                    break
            time.sleep(0.2)
        elapsed = time.perf_counter() - start
        stop.set()
        poller.join()
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=60)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        final = mailings.get(ctx, mailing["id"])
        sent = final["progress"]["sent"]
        rate = sent / elapsed
        figure("status", f"{final['status']} ({sent} sent, {final['progress']['failed']} failed)")
        figure("send_msgs_per_s" + ("_dkim" if args.dkim else ""), round(rate))
        figure("worker_cpu_s_per_1000_msgs", round((usage.ru_utime + usage.ru_stime) / sent * 1000, 3))
        figure("worker_peak_rss_mb", round(peak_rss), "(largest worker process, sampled every 0.5 s)")
        if latencies:
            figure("get_mailing_latency_ms_median", round(statistics.median(latencies) * 1000, 1))
            figure("get_mailing_latency_ms_max", round(max(latencies) * 1000, 1))

        source_rate = smtp_source(sink.port, min(n, 200_000))
        figure("smtp_source_msgs_per_s", round(source_rate))
        figure("ratio_to_smtp_source", round(rate / source_rate, 3))
        ctx.close()
        if dns is not None:
            dns.__exit__(None, None, None)
    finally:
        sink.stop()
        if drop:
            drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
