"""The schema, as SQLAlchemy Core tables. Alembic migrations are written against these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from patronlink.storage.types import UTCDateTime

# Named constraints so that migrations can refer to them on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

agencies = Table(
    "agencies",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("number", String(12), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("language", String(2), nullable=False),
    Column("country_code", String(3), nullable=False),
    # Validated sections of the TOML configuration: sms, renewal, registration, texts.
    Column("settings", JSON, nullable=False, default=dict),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

branches = Table(
    "branches",
    metadata,
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True),
    Column("code", String(16), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("position", Integer, nullable=False, default=0),
)

patrons = Table(
    "patrons",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
    Column("patron_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expiry_date", Date),
    Column("email", String(254)),
    Column("sms_number", String(20)),
    Column("want_sms", Boolean, nullable=False, default=False),
    Column("address_lines", JSON, nullable=False, default=list),
    Column("zip", String(16)),
    Column("birth_date", Date),
    Column("home_branch", String(16)),
    Column("source", String(64)),
    Column("external_id", String(128)),
    Column("pin_hash", String(200)),
    Column("extra", JSON, nullable=False, default=dict),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Phone numbers an import could not read, as written (migration 0012): shown, never texted.
    Column("phones_unparsed", JSON, nullable=False, default=list, server_default="[]"),
    Column("status_reason", String(500)),  # why staff blocked the patron (migration 0013)
    UniqueConstraint("agency_id", "patron_id", name="uq_patrons_agency_patron_id"),
    Index("ix_patrons_source_external", "agency_id", "source", "external_id"),
    Index("ix_patrons_name", "agency_id", "name"),
)

# Every number a patron is known by (phones and the SMS number), for the lookup by sender number.
patron_phones = Table(
    "patron_phones",
    metadata,
    Column("patron_pk", ForeignKey("patrons.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("agency_id", String(16), nullable=False),
    Column("number", String(20), nullable=False),
    Column("kind", String(8), nullable=False),  # phone | sms
    Index("ix_patron_phones_lookup", "agency_id", "number"),
)

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
    Column("item_number", String(64), nullable=False),
    Column("title", String(500), nullable=False),
    UniqueConstraint("agency_id", "item_number", name="uq_items_agency_item_number"),
)

loans = Table(
    "loans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
    Column("patron_pk", ForeignKey("patrons.id", ondelete="CASCADE"), nullable=False),
    Column("item_pk", ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("loaned_at", UTCDateTime, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("renewal_count", Integer, nullable=False, default=0),
    Column("returned_at", UTCDateTime),
    Index("ix_loans_patron", "patron_pk"),
    # One active loan per item: the database enforces it, not a read-then-write check.
    Index(
        "uq_loans_active_item",
        "item_pk",
        unique=True,
        sqlite_where=text("returned_at IS NULL"),
        postgresql_where=text("returned_at IS NULL"),
    ),
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
    Column("item_pk", ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("patron_pk", ForeignKey("patrons.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # waiting | ready | collected | expired (migration 0013); only waiting and ready hold the
    # item for the patron (and refuse another's renewal).
    Column("status", String(12), nullable=False, server_default="waiting"),
    Column("pickup_branch", String(16)),
    Column("pickup_deadline", Date),
    Column("ready_at", UTCDateTime),
    UniqueConstraint("item_pk", "patron_pk", name="uq_reservations_item_patron"),
)

integration_users = Table(
    "integration_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
    Column("username", String(64), nullable=False),
    Column("password_hash", String(200), nullable=False),
    UniqueConstraint("agency_id", "username", name="uq_integration_users_agency_username"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE")),  # NULL: all agencies
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("expires_at", UTCDateTime),  # NULL: never (migration 0013)
    Column("last_used_at", UTCDateTime),  # moved at most once a minute (migration 0013)
)

import_sources = Table(
    "import_sources",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
    # url, format, auth (secrets as ${VAR} references), schedule, deactivation rules.
    Column("settings", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# --- Outbox (migration 0002) -------------------------------------------------------------------

messages = Table(
    "messages",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
    Column("to_number", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("encoding", String(8), nullable=False),
    Column("segments", Integer, nullable=False),
    Column("status", String(12), nullable=False),
    Column("origin", String(32), nullable=False),  # staff | cli | renewal | ...
    # When it may go out (quiet hours already applied); retries move next_attempt_at on.
    Column("send_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", UTCDateTime),
    Column("lease_owner", String(64)),
    Column("driver", String(16)),
    Column("last_http_status", Integer),
    Column("last_code", String(32)),
    Column("last_description", Text),
    Column("gateway_message_id", String(128)),
    Column("buffered", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    # Delivery reports (migration 0011): none | pending | delivered | failed, and the provider's
    # own code and words for the last report that counted.
    Column("delivery", String(12), nullable=False, default="none", server_default="none"),
    Column("delivery_code", String(32)),
    Column("delivery_description", Text),
    Column("delivered_at", UTCDateTime),
    Index("ix_messages_due", "status", "next_attempt_at", "id"),
    Index("ix_messages_lease", "status", "lease_until"),
    Index("ix_messages_agency_status", "agency_id", "status", "id"),
    Index("ix_messages_to", "agency_id", "to_number"),
    Index("ix_messages_agency_delivery", "agency_id", "delivery", "id"),
)

message_attempts = Table(
    "message_attempts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "message_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("driver", String(16), nullable=False),
    Column("outcome", String(12), nullable=False),  # sent | buffered | temporary | permanent | held
    Column("http_status", Integer),
    Column("code", String(32)),
    Column("description", Text),
    Column("worker", String(64)),
    Index("ix_message_attempts_message", "message_id"),
)

# --- Inbound SMS (migrations 0004, 0007) ---------------------------------------------------

inbound_sms = Table(
    "inbound_sms",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("number", String(40), nullable=False),  # E.164 when it could be read, else as sent
    Column("shortcode", String(32), nullable=False),
    Column("text", String(480), nullable=False),
    Column("command", String(64)),  # "renew all", "renew 12345678", or NULL when not understood
    Column("patrons_matched", JSON, nullable=False, default=list),
    # renewed | nothing_renewed | no_loans | not_on_loan | not_understood | unknown_number |
    # duplicate
    Column("outcome", String(24), nullable=False),
    Column("renewed", Integer, nullable=False, default=0),
    Column("refused", Integer, nullable=False, default=0),
    Column("replies", JSON, nullable=False, default=list),  # outbox message ids
    Index("ix_inbound_sms_agency_time", "agency_id", "received_at"),
    Index("ix_inbound_sms_dedupe_text", "agency_id", "number", "text", "received_at"),
)

# --- Patron import (docs/import.md): runs, their record errors, per-patron and per-source state ---

import_runs = Table(
    "import_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", ForeignKey("import_sources.id", ondelete="CASCADE"), nullable=False),
    Column("agency_id", String(16), nullable=False),
    Column("trigger", String(16), nullable=False),  # schedule | staff | cli
    Column("status", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("due_at", UTCDateTime),  # the schedule's due time that started this run
    Column("records", Integer, nullable=False, default=0),
    Column("created", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("deactivated", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("message", Text),  # why it failed, or what was skipped (deactivation, unknown columns)
    # Records written with a warning (migration 0012).
    Column("warnings", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_import_runs_source", "source_id", "id"),
)

import_run_errors = Table(
    "import_run_errors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("import_runs.id", ondelete="CASCADE"), nullable=False),
    Column("record_number", Integer, nullable=False),
    Column("external_id", String(128)),
    Column("reason", Text, nullable=False),
    # Migration 0012: which part of the record, and whether it kept the record out (error) or
    # was set aside while the record was written (warning).
    Column("field", String(64)),
    Column("severity", String(8), nullable=False, default="error", server_default="error"),
    Index("ix_import_run_errors_run", "run_id", "record_number"),
)

# What the last applied record of an imported patron looked like, and for how many consecutive
# complete runs the patron has been missing from the feed.
import_patron_state = Table(
    "import_patron_state",
    metadata,
    Column("patron_pk", ForeignKey("patrons.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(32)),  # NULL: compare field by field next time
    Column("missing_runs", Integer, nullable=False, default=0),
)

# The last number given to a patron id an import made up, per agency (migration 0012): for rows
# of a feed that carry no card number (Koha numbers such patrons itself).
patron_id_sequences = Table(
    "patron_id_sequences",
    metadata,
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True),
    Column("last_value", Integer, nullable=False, default=0),
)

# One row per source: the schedule's last claimed due time and the run holding the source.
import_source_state = Table(
    "import_source_state",
    metadata,
    Column("source_id", ForeignKey("import_sources.id", ondelete="CASCADE"), primary_key=True),
    Column("last_due_at", UTCDateTime),
    Column("running_run_id", Integer),
    Column("lease_until", UTCDateTime),
)

# --- Staff users of the web UI (docs/staff-ui.md, migration 0006) ------------------------------

staff_users = Table(
    "staff_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),  # argon2id
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE")),  # NULL: an administrator
    Column("language", String(2), nullable=False, default="da"),  # da | en
    Column("created_at", UTCDateTime, nullable=False),
    # Set by `patronlink user disable`: the user cannot log in and their sessions are gone.
    Column("disabled_at", UTCDateTime),
)

# --- Security, second round (issue 13, migration 0008) -----------------------------------------

# Server-side staff sessions: the cookie holds only an opaque id, and this row is kept under its
# SHA-256 (a copy of the table gives nobody a usable cookie). Logout, disabling the user and a
# password reset delete the rows; idle and absolute limits are checked on every request.
staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", ForeignKey("staff_users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("language", String(2)),
    Column("notice", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
)

# One row per throttle key (domain/throttle.py): shared by every process on the database, so a
# burst spread over several `serve` processes meets one count. Rows of quiet keys are purged.
auth_throttle = Table(
    "auth_throttle",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
    Column("window_start", UTCDateTime),
    Column("blocked_until", UTCDateTime),
    Column("strikes", Integer, nullable=False, default=0),
    Column("trusted_until", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False, index=True),
)

# --- Operations: pauses and idempotency keys (issue 14, migration 0010) -------------------------

# Sending paused: one row per agency (its ISIL) or one row with scope '*' for every agency. Texts
# of a paused agency stay queued; the claim skips them. No foreign key: '*' is no agency.
PAUSE_EVERYWHERE = "*"
sms_pauses = Table(
    "sms_pauses",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("paused_at", UTCDateTime, nullable=False),
    Column("paused_by", String(100), nullable=False),  # cli:<user>, start-paused:<host>, staff
    Column("reason", Text),
)

# ``Idempotency-Key`` of POST .../messages: the first request's message, per token and agency.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("token_id", ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True),
    Column("agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),  # SHA-256 of the canonical body
    Column(
        "message_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

# --- Daily operations (issue 18, migration 0013) ------------------------------------------------

# Who did what, when, from where, to which object. No foreign keys: an entry outlives the user,
# token, patron or agency it names (anonymising a patron keeps the entry, which holds no
# personal data beyond the patron id).
audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_kind", String(8), nullable=False),  # staff | token | cli | system
    Column("actor", String(200), nullable=False),
    Column("source", String(200)),  # client address, or user@host for the CLI
    Column("action", String(32), nullable=False),
    Column("agency_id", String(16)),  # NULL: not one agency's (a token for all, the config)
    Column("object_kind", String(16), nullable=False),
    Column("object_id", String(128), nullable=False),
    Column("details", JSON, nullable=False, default=dict),
    Index("ix_audit_log_agency", "agency_id", "id"),
    Index("ix_audit_log_object", "object_kind", "object_id"),
)
