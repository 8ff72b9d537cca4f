"""The ``tidings`` command: serve, worker, migrate, token create, user create, demo."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import click

from tidings.config import Settings
from tidings.errors import TidingsError

TOKEN_FILE = Path("tidings-admin.token")


def _settings() -> Settings:
    return Settings()


def _context(*, migrate: bool = True):  # type: ignore[no-untyped-def]
    from tidings.services.context import Context

    return Context.create(_settings(), migrate_schema=migrate)


def _logging() -> None:
    logging.basicConfig(level=os.environ.get("TIDINGS_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
def main() -> None:
    """Tidings: email and SMS mailings to a shop's customers."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Serve the API and UI only; send from `tidings worker`.")
def serve(host: str, port: int, no_worker: bool) -> None:
    """HTTP API, web UI, scheduler and one sending worker; migrates the schema first."""
    import uvicorn

    from tidings.api.app import create_app
    from tidings.services import demo

    _logging()
    ctx = _context()
    token = ctx.settings.admin_token or _bootstrap_token(ctx)
    if demo.is_empty(ctx):
        summary = demo.seed(ctx, send=True)
        click.echo(f"Seeded demo data: {summary}")
    app = create_app(ctx, run_worker=not no_worker)
    click.echo(f"Tidings is at http://{host}:{port}/  (API: /api/v1, OpenAPI: /openapi.json)")
    if ctx.settings.smtp_url.startswith("file://"):
        click.echo(f"Mail goes to the outbox folder {ctx.settings.smtp_url.removeprefix('file://')}/")
    from tidings.services import users

    if not users.list_users(ctx):
        click.echo("Nobody can sign in to the web UI yet; create a person with\n"
                   "  .venv/bin/tidings user create --email you@example.com --password '...' --role admin")
    click.echo(f"Admin API token: {token}")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _bootstrap_token(ctx) -> str:  # type: ignore[no-untyped-def]
    """An admin token kept in ./tidings-admin.token so each start prints the same one."""
    from tidings.errors import Unauthorized
    from tidings.services import tokens

    if TOKEN_FILE.exists():
        token = TOKEN_FILE.read_text().strip()
        try:
            tokens.authenticate(ctx, token)
            return token
        except Unauthorized:
            pass
    token = tokens.create_token(ctx, name="printed by tidings serve", role="admin")
    TOKEN_FILE.write_text(token + "\n")
    TOKEN_FILE.chmod(0o600)
    return token


def _run_worker() -> None:
    from tidings.services.sending import make_worker

    _logging()
    # The render thread is CPU-bound and the SMTP threads wait on sockets: a short
    # switch interval hands the GIL sooner to a thread whose reply has arrived
    # (about 10% more messages a second in bench/run.py).
    sys.setswitchinterval(0.0005)
    w = make_worker(_context(migrate=False))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: w.stop_event.set())
    w.run()


@main.command()
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Sending processes on this host (one per core is a good start).")
def worker(processes: int) -> None:
    """A sending worker and scheduler only; many may share one PostgreSQL.

    With ``TIDINGS_BOUNCE_LISTEN`` this process also runs the inbound listener
    for bounces and complaints (one per host, in the parent process)."""
    from tidings.services import feedback

    _logging()
    ctx = _context()  # migrates once, before any worker starts
    listener = feedback.start_listener(ctx)
    try:
        if processes == 1:
            _run_worker()
        else:
            _supervise(processes)
    finally:
        if listener is not None:
            listener.stop()
        ctx.close()


def _supervise(processes: int) -> None:
    """Run ``processes`` workers in child processes until SIGTERM or SIGINT."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    children = [spawn.Process(target=_run_worker, name=f"tidings-worker-{i}") for i in range(processes)]
    for child in children:
        child.start()

    def stop(*_: object) -> None:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: each finishes its group and stops

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()


@main.command()
def migrate() -> None:
    """Create or upgrade the schema."""
    from tidings.store.db import migrate as run

    url = _settings().database_url
    run(url)
    click.echo(f"Schema is up to date ({url.split('@')[-1]}).")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["admin", "manager"]), default="manager", show_default=True)
def token_create(name: str, role: str) -> None:
    """Print a new API token (alone on the last line)."""
    from tidings.services import tokens

    ctx = _context()
    value = tokens.create_token(ctx, name=name, role=role)
    click.echo(f"Created {role} token {name!r}; it is shown only once:")
    click.echo(value)


@main.group()
def user() -> None:
    """People who sign in to the web UI."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", type=click.Choice(["admin", "manager"]), default="manager", show_default=True)
def user_create(email: str, password: str, role: str) -> None:
    from tidings.services import users

    try:
        users.create_user(_context(), email=email, password=password, role=role)
    except TidingsError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created {role} {email.lower()}.")


@main.command()
@click.option("--send", is_flag=True, help="Also send one demo mailing (to the outbox by default).")
def demo(send: bool) -> None:
    """Seed demo customers, a segment, templates and a draft mailing."""
    from tidings.services import demo as demo_service

    click.echo(f"Seeded: {demo_service.seed(_context(), send=send)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
