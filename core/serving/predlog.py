"""The prediction log: one row per answered image, committed before the answer leaves the service.

SQLite (WAL) under `$TRANSFERLAB_HOME/serving/<run-id>.sqlite` by default, any SQLAlchemy URL otherwise
(e.g. PostgreSQL for a log shared by several services). Inputs themselves are never stored here.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Integer, MetaData, String, Table, create_engine, event, func, select, update
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from core import paths

metadata = MetaData()
predictions = Table(
    "predictions", metadata,
    Column("id", String(32), primary_key=True),  # uuid4 hex, returned to the client for feedback
    Column("time", Float, nullable=False, index=True),  # unix seconds (portable across databases)
    Column("model", String(64), nullable=False, index=True),  # the run id
    Column("content_hash", String(64), nullable=False),  # sha256 of the uploaded bytes
    Column("width", Integer), Column("height", Integer),
    Column("top_k", JSON, nullable=False),  # [{"label", "probability"}...], best first
    Column("label", String(200)),  # top-1 label, kept apart so the monitor need not parse JSON
    Column("confidence", Float),  # top-1 probability
    Column("unsure", Boolean, nullable=False, default=False),
    Column("unknown", Boolean, nullable=False, default=False),
    Column("ood_score", Float),
    Column("latency_ms", Float, nullable=False),
    Column("client", String(64)),
    Column("kept_file", String(64)),  # file name under --keep-images, when inputs are kept
    Column("feedback_label", String(200)),
    Column("feedback_time", Float),
)
COLUMNS = tuple(c.name for c in predictions.columns)


class LogUnavailable(RuntimeError):
    """The log database cannot be opened or written; the message says so in one sentence."""


def default_url(run_id: str) -> str:
    folder = paths.home() / "serving"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / f'{run_id}.sqlite'}"


LOG_SERVERS_ENV = "TRANSFERLAB_LOG_SERVERS"


def allowed_log_url(url: str) -> str | None:
    """Why a log URL typed into the app is refused (one sentence), or None when it may be opened.

    A SQLite URL names a file on the server itself: only files under $TRANSFERLAB_HOME, judged on the real path
    (after '..' and symbolic links), so nobody can open the server's other files through the Monitor page.
    A database server makes this server connect wherever the URL points (and some drivers' options read local
    files): only PostgreSQL, without options, and only where the operator allows it (TRANSFERLAB_LOG_SERVERS=1).
    """
    try:
        parsed = make_url(url.strip())
        dialect = parsed.get_dialect()  # the class create_engine would use ('SQLITE://' names no dialect at all)
    except ArgumentError:  # NoSuchModuleError included
        return f"'{url}' is not a database URL (for example sqlite:///path/log.sqlite)."
    if not issubclass(dialect, SQLiteDialect):
        if os.environ.get(LOG_SERVERS_ENV) != "1":
            return (f"This server opens only SQLite prediction logs; its operator can allow PostgreSQL ones "
                    f"({LOG_SERVERS_ENV}=1).")
        if parsed.get_backend_name() != "postgresql" or parsed.query:
            return "Only a PostgreSQL URL without options (postgresql://user@host/db) can be opened here."
        return None
    home = paths.home().resolve()
    database = parsed.database or ""
    plain = "A SQLite log must be a plain file path (for example sqlite:////path/log.sqlite), without options."
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query:
        # Options such as uri=true let SQLite read the path as a URI ('%2e%2e' is '..'): a file, nothing else.
        return plain
    if not Path(database).is_absolute():
        return f"A SQLite log must be given by its full path, inside {home}."
    try:
        inside = Path(database).resolve().is_relative_to(home)
        Path(database).exists()  # only raises, for a name longer than the file system allows
    except (OSError, ValueError):  # ValueError: a NUL byte
        return plain
    return None if inside else f"Only prediction logs inside {home} can be opened here."


def _is_sqlite_file(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def open_engine(url: str, create: bool = True) -> Engine:
    """An engine for url; SQLite files get WAL (readers never block the writer) and a busy timeout."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise LogUnavailable(f"'{url}' is not a database URL (for example sqlite:///path/log.sqlite)") from error
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        if not create and not Path(parsed.database).exists():
            raise LogUnavailable(f"there is no prediction log at {parsed.database}")
        if not create and not _is_sqlite_file(Path(parsed.database)):  # never turn some other file into a database
            raise LogUnavailable(f"{parsed.database} is not a prediction log")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}} if is_sqlite else {}
    try:
        engine = create_engine(parsed, **options)
    except Exception as error:  # a missing driver (e.g. psycopg) or a malformed URL
        raise LogUnavailable(f"the log database could not be opened ({type(error).__name__}: {error})") from error
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a committed row survives the process being killed (only a power cut can lose the last commits).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class PredictionLog:
    """Writes and reads the `predictions` table; safe to share between threads."""

    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        self.engine = open_engine(url, create=create)
        try:
            if create:
                metadata.create_all(self.engine)
        except Exception as error:
            raise LogUnavailable(f"the log database could not be prepared ({type(error).__name__})") from error

    def write(self, rows: list[dict[str, Any]]) -> None:
        """All rows in one transaction: when this returns, they are on disk."""
        if rows:
            with self.engine.begin() as connection:
                connection.execute(predictions.insert(), rows)

    def add_feedback(self, prediction_id: str, label: str) -> bool:
        """The true label of a logged prediction; False when no prediction has that id."""
        with self.engine.begin() as connection:
            result = connection.execute(update(predictions).where(predictions.c.id == prediction_id)
                                        .values(feedback_label=label, feedback_time=time.time()))
        return result.rowcount > 0

    def add_feedback_by_content(self, labels: dict[str, str]) -> int:
        """True labels by image content (sha256 -> label), for every logged answer to that exact image, in one
        transaction; returns how many answers got a new label."""
        changed = 0
        digests = list(labels)
        with self.engine.begin() as connection:
            for start in range(0, len(digests), 500):  # one scan per 500 digests (content_hash has no index)
                found = connection.execute(select(predictions.c.id, predictions.c.content_hash, predictions.c.feedback_label)
                                           .where(predictions.c.content_hash.in_(digests[start:start + 500]))).all()
                for prediction_id, digest, current in found:
                    if current != labels[digest]:
                        connection.execute(update(predictions).where(predictions.c.id == prediction_id)
                                           .values(feedback_label=labels[digest], feedback_time=time.time()))
                        changed += 1
        return changed

    def count(self, model: str | None = None) -> int:
        query = select(func.count()).select_from(predictions)
        if model:
            query = query.where(predictions.c.model == model)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def rows(self, model: str | None = None, since: float | None = None, limit: int = 100_000) -> list[dict[str, Any]]:
        """The newest `limit` rows (oldest first), optionally of one model and after a time."""
        query = select(predictions).order_by(predictions.c.time.desc()).limit(limit)
        if model:
            query = query.where(predictions.c.model == model)
        if since is not None:
            query = query.where(predictions.c.time >= since)
        try:
            with self.engine.connect() as connection:
                found = [dict(row._mapping) for row in connection.execute(query)]
        except Exception as error:  # no table, wrong schema, unreachable server
            raise LogUnavailable(f"the prediction log could not be read ({type(error).__name__})") from error
        return found[::-1]

    def models(self) -> list[str]:
        with self.engine.connect() as connection:
            return [m for (m,) in connection.execute(select(predictions.c.model).distinct())]

    def close(self) -> None:
        self.engine.dispose()
