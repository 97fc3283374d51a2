"""The prediction log's database: its tables, and opening them on SQLite or PostgreSQL (see predlog.py)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Integer, MetaData, String, Table, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

LABEL_CHARS = 200  # the label columns' width: a longer class name is stored cut (PostgreSQL refuses, SQLite would not)
metadata = MetaData()
predictions = Table(
    "predictions", metadata,
    Column("id", String(32), primary_key=True),  # the prediction id returned to the client
    Column("time", Float, nullable=False, index=True),  # unix seconds (portable across databases)
    Column("model", String(64), nullable=False, index=True),  # the run id
    Column("content_hash", String(64), nullable=False),  # sha256 of the uploaded bytes
    Column("width", Integer), Column("height", Integer),
    Column("top_k", JSON, nullable=False),  # [{"label", "probability"}...], best first
    Column("label", String(LABEL_CHARS)),  # top-1 label, kept apart so the monitor need not parse JSON
    Column("confidence", Float),  # top-1 probability
    Column("unsure", Boolean, nullable=False, default=False),
    Column("unknown", Boolean, nullable=False, default=False),
    Column("ood_score", Float),
    Column("latency_ms", Float, nullable=False),
    Column("client", String(64)),
    Column("kept_file", String(64)),  # file name under --keep-images, when inputs are kept
    Column("feedback_label", String(LABEL_CHARS)),  # the FIRST true label reported; later ones only add history
    Column("feedback_time", Float),
    Column("replica", String(64)),  # which service process answered (host:pid)
)
feedback = Table(
    "feedback", metadata,  # append-only: who said which label when
    Column("number", Integer, primary_key=True, autoincrement=True),
    Column("prediction_id", String(32), nullable=False, index=True),
    Column("label", String(LABEL_CHARS), nullable=False),
    Column("time", Float, nullable=False),
    Column("client", String(64)),
    Column("source", String(16), nullable=False),  # "api" (POST /feedback) or "label page"
)
COLUMNS = tuple(c.name for c in predictions.columns)
SCHEMA_LOCK = 0x7472616E73666572  # PostgreSQL advisory lock key ("transfer"): replicas create the tables one by one


class LogUnavailable(RuntimeError):
    """The log database cannot be opened, read or written; the message says so in one sentence."""


def _is_sqlite_file(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def open_engine(url: str, create: bool = True) -> Engine:
    """An engine for url. SQLite files get WAL (readers never block the writer) and a busy timeout; PostgreSQL gets
    psycopg, a pool that tests a connection before use (a restarted server costs no failed request) and short
    timeouts, so that while the server is down each request fails within seconds instead of hanging."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise LogUnavailable(f"'{url}' is not a database URL (for example sqlite:///path/log.sqlite)") from error
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {}
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        if not create and not _is_sqlite_file(Path(parsed.database)):  # never turn some other file into a database
            raise LogUnavailable("there is no prediction log at this address")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        options = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    elif backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, the driver requirements.txt installs
        options = {"pool_pre_ping": True, "pool_timeout": 10,
                   "connect_args": {"connect_timeout": 3, "options": "-c statement_timeout=15000"}}
    try:
        engine = create_engine(parsed, **options)
    except ImportError as error:
        raise LogUnavailable("a PostgreSQL log needs the psycopg driver (pip install 'psycopg[binary]')") from error
    except Exception as error:  # a malformed URL, another database's missing driver
        raise LogUnavailable(f"the log database could not be opened ({type(error).__name__})") from error
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a committed row survives the process being killed (only a power cut can lose the last commits).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def unavailable_error(engine: Engine, doing: str, error: Exception) -> LogUnavailable:
    driver = " through psycopg" if engine.dialect.name == "postgresql" else ""
    return LogUnavailable(f"the prediction log could not be {doing}{driver} ({type(error).__name__})")


def prepare_schema(engine: Engine, attempts: int = 3) -> None:
    """Create the tables (and columns newer than an existing log) once, also when replicas start together:
    PostgreSQL serialises them on an advisory lock; elsewhere a replica that lost the race finds the tables made."""
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
                metadata.create_all(connection)
                _add_missing_columns(connection)
            return
        except SQLAlchemyError as error:
            if attempt == attempts - 1:
                raise unavailable_error(engine, "prepared", error) from error
            time.sleep(0.2 * (attempt + 1))


def _add_missing_columns(connection: Connection) -> None:
    """Logs written before a column existed (e.g. `replica`) get it, empty for their old rows."""
    present = {c["name"] for c in inspect(connection).get_columns("predictions")}
    for column in predictions.columns:
        if column.name not in present:
            kind = column.type.compile(connection.dialect)
            connection.execute(text(f'ALTER TABLE predictions ADD COLUMN "{column.name}" {kind}'))


def insert_ignoring_duplicates(dialect_name: str) -> Any:
    """INSERT that leaves an already logged id as it is (a retried request must never log twice)."""
    if dialect_name == "postgresql":
        return postgresql.insert(predictions).on_conflict_do_nothing(index_elements=["id"])
    if dialect_name == "sqlite":
        return sqlite.insert(predictions).on_conflict_do_nothing(index_elements=["id"])
    return predictions.insert()
