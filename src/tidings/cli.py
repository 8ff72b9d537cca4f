"""The ``tidings`` command: serve, worker, migrate, token create, user create/reset, demo.

Files it creates are private to the user running it: ``serve``, ``worker`` and
``demo`` set the umask to 077 first (the SQLite database, which holds the secret
key that signs sessions and encrypts DKIM keys, its ``-wal``/``-shm`` files, the
outbox and its messages), and ``tidings-admin.token`` is created 0600. No
command prints a secret it was given (``TIDINGS_ADMIN_TOKEN``, database
passwords); ``serve`` prints only the token it generated itself, which is the
way in to a new installation.
"""

from __future__ import annotations

import errno
import getpass
import logging
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

import click
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from tidings.config import DEFAULT_HOST, DEFAULT_PORT, WILDCARD_HOSTS, Settings, address_url
from tidings.errors import TidingsError

TOKEN_FILE = Path("tidings-admin.token")
#: Files created by serve, worker and demo: readable by their owner only.
PRIVATE_UMASK = 0o077


def _private_files() -> None:
    """From now on, files and folders this process creates are its user's alone."""
    os.umask(PRIVATE_UMASK)


def _cli_actor():  # type: ignore[no-untyped-def]
    """Who the audit log says acted: the command line, and the system user running it."""
    from tidings.domain.actors import Actor

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    return Actor(name=f"command line ({who})", role="admin")


def _settings() -> Settings:
    """The settings from the environment; a bad value is one line naming its variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"TIDINGS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise click.ClickException(problems) from None


def _server_settings() -> Settings:
    """:func:`_settings`, refusing short secrets: a process that signs sessions and
    links or accepts the admin token must not run with a guessable one."""
    settings = _settings()
    problems = settings.weak_secrets()
    if problems:
        raise click.ClickException("; ".join(problems))
    return settings


def _context(*, migrate: bool = True, settings: Settings | None = None):  # type: ignore[no-untyped-def]
    """The services' context; a database that cannot serve stops the command
    with one line (what the driver said, and what to check), not a traceback."""
    import sqlalchemy as sa

    from tidings.services.context import Context
    from tidings.store.db import unavailable

    try:
        return Context.create(settings or _settings(), migrate_schema=migrate)
    except sa.exc.DBAPIError as exc:
        down = unavailable(exc)
        if down is None:
            raise
        said = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else ""
        raise click.ClickException(f"{down.message} The database said: {said}. Check that it runs "
                                   "and that TIDINGS_DATABASE_URL points at it.") from None


def _logging() -> None:
    logging.basicConfig(level=os.environ.get("TIDINGS_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
def main() -> None:
    """Tidings: email and SMS mailings to a shop's customers."""


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--no-worker", is_flag=True, help="Serve the API and UI only; send from `tidings worker`.")
@click.option("--demo", "with_demo", is_flag=True,
              help="Seed demo data into a database without customers and send the demo mailing "
                   "to the outbox (needs the file:// outbox).")
def serve(host: str, port: int, no_worker: bool, with_demo: bool) -> None:
    """HTTP API, web UI, scheduler and one sending worker; migrates the schema first.

    It seeds and sends nothing on its own: demo data only with --demo.
    The port is taken before anything else, so a busy port stops it at once."""
    import uvicorn

    from tidings.api.app import create_app
    from tidings.services import demo, users

    _private_files()
    settings = _server_settings()
    if with_demo:
        try:
            demo.check_sendable(settings)
        except TidingsError as exc:
            raise click.ClickException(f"--demo: {exc.message}") from None
    sock = _listen(host, port)
    port = sock.getsockname()[1]  # the port chosen when --port 0
    bound = address_url(host, port)
    settings = settings.listening_on(host, port)
    _logging()
    ctx = _context(settings=settings)
    token = None if ctx.settings.admin_token else _bootstrap_token(ctx)
    if with_demo:
        if demo.is_empty(ctx):
            click.echo(f"Seeded demo data: {demo.seed(ctx, send=True)}")
        else:
            click.echo("The database has customers already; --demo seeds nothing.")
    app = create_app(ctx, run_worker=not no_worker)
    click.echo(f"Tidings is at {bound}/  (API: /api/v1, OpenAPI: /openapi.json)")
    if not settings.public_url_given and host in WILDCARD_HOSTS:
        click.echo(f"Links in messages point at {settings.public_url} (this machine's name, as it "
                   "listens on every address); set TIDINGS_PUBLIC_URL to the address recipients reach.")
    elif settings.public_url_given and settings.public_url.lower() != bound.lower():
        click.echo(f"Links in messages point at {settings.public_url} (TIDINGS_PUBLIC_URL), "
                   f"not at {bound} where this server listens.")
    if settings.smtp_url.startswith("file://"):
        outbox = Path(settings.smtp_url.removeprefix("file://")).absolute()
        click.echo(f"Mail goes to the outbox folder {outbox}/")
    if not users.list_users(ctx):
        click.echo("Nobody can sign in to the web UI yet; create a person with\n"
                   f"  {_command_hint(settings)} user create --email you@example.com --role admin")
    if token is None:
        click.echo("Admin API token: the one in TIDINGS_ADMIN_TOKEN.")
    else:
        click.echo(f"Admin API token (kept in {TOKEN_FILE.absolute()}): {token}")
    # Forwarded headers are read by Tidings itself, and only with TIDINGS_TRUST_PROXY.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", proxy_headers=False))
    # On SIGTERM uvicorn shuts down gracefully (the worker records what is on the wire
    # and hands its package back), then raises the signal again with the handler found
    # here: a stop asked for and done is a clean exit (0).
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port``, for uvicorn to serve on; taken
    before the schema is migrated so a busy port stops ``serve`` at once.
    Raises :class:`click.ClickException` (one line) when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a port whose last server has just stopped can be used again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "the port is in use (is Tidings already running?); stop that or choose another --port"
        elif exc.errno == errno.EACCES:
            reason = "ports below 1024 need privileges; choose a --port above 1023"
        else:
            reason = exc.strerror or str(exc)
        raise click.ClickException(f"Cannot listen on {host}:{port}: {reason}.") from None
    sock.set_inheritable(True)
    return sock


def _command_hint(settings: Settings) -> str:
    """How to run ``tidings`` on this server's database from any directory: the
    absolute path of this executable, with the database URL when it is a
    SQLite file (a relative path would name another file elsewhere). Other
    URLs may hold a password and are not printed."""
    program = Path(sys.argv[0])
    if program.name == "tidings" and program.exists():
        command = shlex.quote(str(program.absolute()))
    else:
        command = f"{shlex.quote(sys.executable)} -m tidings.cli"
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return f"TIDINGS_DATABASE_URL=... {command}"
    if url.database and url.database != ":memory:":
        url = url.set(database=str(Path(url.database).absolute()))
    return f"TIDINGS_DATABASE_URL={shlex.quote(url.render_as_string(hide_password=False))} {command}"


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
    token = tokens.create_token(ctx, name="printed by tidings serve", role="admin", actor=_cli_actor())
    TOKEN_FILE.unlink(missing_ok=True)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
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

    _private_files()
    settings = _server_settings()
    if not settings.public_url_given:
        # A worker listens nowhere, so it cannot know where `tidings serve` is reached.
        click.echo(f"TIDINGS_PUBLIC_URL is not set: links in the messages this worker sends point "
                   f"at {settings.public_url}. Set it to the address where tidings serve is "
                   "reached, the same for every process.", err=True)
    _logging()
    ctx = _context(settings=settings)  # migrates once, before any worker starts
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
    value = tokens.create_token(ctx, name=name, role=role, actor=_cli_actor())
    click.echo(f"Created {role} token {name!r}; it is shown only once:")
    click.echo(value)


@main.group()
def user() -> None:
    """People who sign in to the web UI."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Asked for (hidden, twice) when not given, so it stays out of the shell history.")
@click.option("--role", type=click.Choice(["admin", "manager"]), default="manager", show_default=True)
def user_create(email: str, password: str, role: str) -> None:
    """A person who signs in to the web UI with email and password."""
    from tidings.services import users

    try:
        users.create_user(_context(), email=email, password=password, role=role, actor=_cli_actor())
    except TidingsError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created {role} {email.lower()}.")


@user.command("reset")
@click.option("--email", required=True)
def user_reset(email: str) -> None:
    """Reset a person's password: it stops working, they are signed out, and a
    one-time link to choose a new one is printed (alone on the last line)."""
    from tidings.services import users

    settings = _settings()
    try:
        result = users.reset_password(_context(settings=settings), email=email, actor=_cli_actor(),
                                      mail=False)
    except TidingsError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{result['email']} is signed out and their password no longer works. Give them "
               "this link to choose a new one (it works once, for 24 hours):")
    if not settings.public_url_given:
        click.echo(f"(TIDINGS_PUBLIC_URL is not set: the link assumes Tidings is at "
                   f"{settings.public_url}.)")
    click.echo(result["link"])


@main.command()
@click.option("--send", is_flag=True,
              help="Also send a demo mailing to the demo customers; only to the file:// outbox.")
def demo(send: bool) -> None:
    """Seed demo customers, segments, templates and a draft mailing.

    Demo customers have addresses at demo.example.com, which no mail reaches;
    --send is refused unless mail goes to the outbox (TIDINGS_SMTP_URL file://)."""
    from tidings.services import demo as demo_service

    _private_files()
    settings = _settings()
    try:
        if send:
            demo_service.check_sendable(settings)
        click.echo(f"Seeded: {demo_service.seed(_context(settings=settings), send=send)}")
    except TidingsError as exc:
        raise click.ClickException(exc.message) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
