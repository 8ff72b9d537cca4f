"""SQLAlchemy Core tables. Until the first release there is one migration,
``0001_initial``, kept in step with this file (``tests/integration/test_migrations.py``
checks that they agree)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every database."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    ]


meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# A signed-in browser session; the cookie holds a random token whose SHA-256 is
# ``token_hash``. Sign-out deletes the row; removing a person, changing a role or
# resetting a password revokes every row of that person.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
)

# Failed sign-ins per email address typed (whether or not such a person exists, so
# that a lockout tells nothing about who has an account).
sign_in_failures = sa.Table(
    "sign_in_failures",
    metadata,
    sa.Column("email", sa.String(320), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failed_at", UtcDateTime, nullable=False, index=True),
    sa.Column("locked_until", UtcDateTime),
)

# One-time links to choose a new password (only the token's SHA-256 is kept).
password_resets = sa.Table(
    "password_resets",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime),
)

# Addresses an admin allows test sends to, besides those of the people who sign in.
test_addresses = sa.Table(
    "test_addresses",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("address", sa.String(320), nullable=False, unique=True),
    sa.Column("added_by", sa.String(400), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# Who did what: sends, schedules, cancels, resumes, deletions, erasures, top-ups,
# people and roles, tokens, test sends. Written in the transaction of the change.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(400), nullable=False),
    sa.Column("actor_role", sa.String(16), nullable=False),
    sa.Column("action", sa.String(48), nullable=False),
    sa.Column("subject", sa.String(400), nullable=False),
    sa.Column("detail", Json),
    # Serves "test sends by this actor in the last hour".
    sa.Index("ix_audit_log_actor_action_at", "actor", "action", "at"),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("external_id", sa.String(255), unique=True),
    sa.Column("email", sa.String(320), unique=True),
    sa.Column("phone", sa.String(32)),
    sa.Column("first_name", sa.String(255)),
    sa.Column("last_name", sa.String(255)),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("email_status", sa.String(16), nullable=False, server_default="subscribed"),
    sa.Column("sms_status", sa.String(16), nullable=False, server_default="subscribed"),
    sa.Column("soft_bounces", sa.Integer, nullable=False, server_default="0"),
    sa.Column("orders_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("orders_total", sa.Numeric(14, 2), nullable=False, server_default="0"),
    sa.Column("last_order_at", UtcDateTime),
    *_timestamps(),
    # The customer list pages by id (newest first), filtered by a channel's status:
    # these make a page of unsubscribed customers one index range at a million.
    sa.Index("ix_customers_email_status_id", "email_status", "id"),
    sa.Index("ix_customers_sms_status_id", "sms_status", "id"),
    # Never reuse the id of a deleted customer on SQLite either: messages and
    # orders keep the ids of deleted customers, and must not become a newcomer's.
    sqlite_autoincrement=True,
)

# An erased customer's address or phone that must stay suppressed (they had
# unsubscribed, bounced or complained), kept only as a keyed hash (HMAC-SHA256
# with the installation's secret of "CHANNEL:ADDRESS"): a customer added again
# with it gets that status instead of "subscribed". See services/customers.erase.
erased_contacts = sa.Table(
    "erased_contacts",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# A CSV import of customers: the file until it is imported, the column mapping,
# and its progress, polled by the import page while a thread of serve runs it.
customer_imports = sa.Table(
    "customer_imports",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("filename", sa.String(255)),
    sa.Column("data", sa.LargeBinary),  # emptied once imported
    sa.Column("encoding", sa.String(32), nullable=False),
    sa.Column("delimiter", sa.String(1), nullable=False),
    sa.Column("mapping", Json, nullable=False),
    # previewed -> running -> done | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total_lines", sa.Integer, nullable=False, server_default="0"),
    sa.Column("done_lines", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", Json, nullable=False),
    sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failure", sa.Text),
    sa.Column("created_by", sa.String(320), nullable=False),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    *_timestamps(),
)

# What the pages customers see say about the shop, and the default sender:
# one row (id 1), written from the Settings page.
shop_settings = sa.Table(
    "shop_settings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255)),
    sa.Column("from_email", sa.String(320)),
    sa.Column("from_name", sa.String(255)),
    sa.Column("postal_address", sa.Text),
    sa.Column("logo", sa.LargeBinary),
    sa.Column("logo_type", sa.String(32)),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("rules", Json, nullable=False),
    *_timestamps(),
)

templates = sa.Table(
    "templates",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("html", sa.Text),
    sa.Column("text", sa.Text),
    # "html": html is the author's; "blocks": html is made from blocks (the builder's JSON).
    sa.Column("editor", sa.String(8), nullable=False, server_default="html"),
    sa.Column("blocks", Json),
    # Hidden text at the start of the body, shown by mail programs after the subject.
    sa.Column("preheader", sa.Text),
    *_timestamps(),
)

# Images uploaded for the email builder, served without sign-in at /media/<id>-<name>.
# In the database rather than a folder: every `tidings serve` of a scale-out
# reads the same ones, and a database backup keeps them (each at most 5 MB).
media = sa.Table(
    "media",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("content_type", sa.String(32), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

mailings = sa.Table(
    "mailings",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("segment_id", sa.ForeignKey("segments.id")),
    sa.Column("template_id", sa.ForeignKey("templates.id")),
    sa.Column("from_email", sa.String(320)),
    sa.Column("from_name", sa.String(255)),
    sa.Column("reply_to", sa.String(320)),
    sa.Column("conversion", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("send_at", UtcDateTime),
    sa.Column("interrupt_code", sa.String(32)),
    sa.Column("interrupt_message", sa.Text),
    # Set by a cancel while sending: no new package starts, and the mailing becomes
    # canceled when its last started package is out.
    sa.Column("cancel_requested_at", UtcDateTime),
    # Chains: every step carries the id of the chain's first step.
    sa.Column("chain_id", sa.BigInteger),
    sa.Column("step", sa.Integer, nullable=False, server_default="1"),
    sa.Column("delay_hours", sa.Float),
    sa.Column("condition", sa.String(16)),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    # The reputation guard's window: messages handed to the server, refused, bounced
    # and complained about since sending started or an admin last resumed after a
    # reputation stop. Updated with the message rows they count: no scan needed.
    sa.Column("guard_sent", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("guard_failed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("guard_bounced", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("guard_complained", sa.BigInteger, nullable=False, server_default="0"),
    # Running counters kept by feedback so statistics stay fast at millions of messages.
    sa.Column("delivered_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("opened_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("clicked_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("unsubscribed_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("complained_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("hard_bounced_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("soft_bounced_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("orders_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("revenue", sa.Numeric(16, 2), nullable=False, server_default="0"),
    # SMS: messages whose receipts said undelivered (or deleted), expired, rejected.
    sa.Column("undelivered_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("expired_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rejected_count", sa.BigInteger, nullable=False, server_default="0"),
    # SMS quiet hours {"enabled", "window": "21:00-09:00"}; NULL: none (email).
    sa.Column("quiet_hours", Json),
    *_timestamps(),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("mailing_id", sa.ForeignKey("mailings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("address", sa.String(320)),
    # queued -> sending -> sent | failed ; sending -> unknown (worker died) ; skipped
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("skip_reason", sa.String(16)),
    sa.Column("error", sa.Text),
    sa.Column("smtp_code", sa.Integer),
    sa.Column("sent_at", UtcDateTime),
    sa.Column("delivered_at", UtcDateTime),
    sa.Column("opened_at", UtcDateTime),
    sa.Column("clicked_at", UtcDateTime),
    sa.Column("bounce", sa.String(4)),
    sa.Column("complained_at", UtcDateTime),
    sa.Column("unsubscribed_at", UtcDateTime),
    # SMS: a queued message held for quiet hours is not sent before this time.
    sa.Column("not_before", UtcDateTime),
    # SMS: what the receipts of its parts add up to (domain.sms.roll_up), and when.
    sa.Column("receipt", sa.String(12)),
    sa.Column("receipt_at", UtcDateTime),
    sa.UniqueConstraint("mailing_id", "customer_id"),
    # Serves the package walk (queued messages of a mailing by id) and progress counts.
    sa.Index("ix_messages_mailing_status", "mailing_id", "status", "id"),
    sa.Index("ix_messages_customer", "customer_id"),
)

packages = sa.Table(
    "packages",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("mailing_id", sa.ForeignKey("mailings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("first_message_id", sa.BigInteger, nullable=False),
    sa.Column("last_message_id", sa.BigInteger, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    # pending -> active -> done ; active -> pending (interrupted, or lease expired)
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", UtcDateTime),
    sa.Column("reserved", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    # Its messages by status, counted each time it is closed (NULL before): the
    # progress of a mailing then only counts the messages of its active packages.
    sa.Column("sent_count", sa.Integer),
    sa.Column("failed_count", sa.Integer),
    sa.Column("unknown_count", sa.Integer),
    sa.Column("queued_count", sa.Integer),
    # A package released for quiet hours is not claimed again before this time.
    sa.Column("not_before", UtcDateTime),
    sa.UniqueConstraint("mailing_id", "seq"),
    sa.Index("ix_packages_status_mailing", "status", "mailing_id"),
)

quotas = sa.Table(
    "quotas",
    metadata,
    sa.Column("channel", sa.String(8), primary_key=True),
    sa.Column("balance", sa.BigInteger),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("external_id", sa.String(255), nullable=False, unique=True),
    sa.Column("customer_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("total", sa.Numeric(14, 2), nullable=False),
    sa.Column("utm", Json),
    sa.Column("mailing_id", sa.BigInteger, index=True),
    sa.Column("message_id", sa.BigInteger),
    sa.Column("ordered_at", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

domains = sa.Table(
    "domains",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("domain", sa.String(253), nullable=False, unique=True),
    sa.Column("selector", sa.String(63), nullable=False),
    sa.Column("dkim_private_key", sa.Text, nullable=False),
    sa.Column("dkim_public_key", sa.Text, nullable=False),
    sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("checks", Json),
    sa.Column("verified_at", UtcDateTime),
    *_timestamps(),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("address", sa.String(320), nullable=False, unique=True),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

feedback_events = sa.Table(
    "feedback_events",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("message_id", sa.BigInteger, index=True),
    sa.Column("detail", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# -- SMS ------------------------------------------------------------------------------

# Each part of an SMS the SMSC accepted, by the id it gave (canonical form,
# domain.sms.canonical_message_id), and what its delivery receipt said.
message_parts = sa.Table(
    "message_parts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("message_id", sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    sa.Column("part", sa.Integer, nullable=False),
    sa.Column("remote_id", sa.String(64), nullable=False, index=True),
    sa.Column("delivery", sa.String(12)),  # domain.sms.Delivery; NULL: no final receipt yet
    sa.Column("state", sa.String(16)),  # the last receipt's state (enroute, accepted ... too)
    sa.Column("error", sa.String(64)),
    sa.Column("receipt_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("message_id", "part"),
)

# Receipts that named no part recorded yet (they can come before the worker
# records the part); applied when the part is recorded, dropped after the wait.
sms_receipts = sa.Table(
    "sms_receipts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("remote_id", sa.String(64), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error", sa.String(64)),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False, index=True),
)

# The links of an SMS mailing, numbered for the short links (/s/TOKEN) that name them.
sms_links = sa.Table(
    "sms_links",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("mailing_id", sa.ForeignKey("mailings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("url_hash", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.UniqueConstraint("mailing_id", "url_hash"),
)
