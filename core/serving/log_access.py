"""Which prediction logs a visitor of the Monitor page may open by URL.

A SQLite URL names a file on the server itself: only files inside the visitor's own workspace, judged on the real
path (after '..' and symbolic links), so nobody reads another workspace's log by guessing its run id, nor the
server's other files. Every refusal of a file is the same sentence, whatever the reason (outside the workspace,
missing, not a log, unreadable), so the answer never tells which files exist. A database server makes this server
connect wherever the URL points (and some drivers' options read local files): only PostgreSQL, without options,
and only where the operator allows it (TRANSFERLAB_LOG_SERVERS=1).
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.i18n import N_, _
from core.serving.predlog import LogUnavailable, PredictionLog

LOG_SERVERS_ENV = "TRANSFERLAB_LOG_SERVERS"
# Marked for the catalogue; raised and shown through _().
REFUSED = N_("This is not a prediction log of this workspace: give one as sqlite:///serving/RUN_ID.sqlite "
           "(a path inside the workspace) or as the URL of a database server.")
POSTGRESQL_DRIVERS = ("postgresql", "postgresql+psycopg")


def is_sqlite_url(url: str) -> bool:
    try:
        return issubclass(make_url(url.strip()).get_dialect(), SQLiteDialect)
    except ArgumentError:
        return False


def resolve_log_url(url: str, workspace: Path) -> str:
    """The URL to open for what a visitor typed; raises LogUnavailable with the one sentence of refusal.

    SQLite paths may be relative to the workspace (sqlite:///serving/<run>.sqlite), so nobody needs to see the
    workspace's full path (it holds the workspace key).
    """
    try:
        parsed = make_url(url.strip())
        dialect = parsed.get_dialect()  # the class create_engine would use ('SQLITE://' names no dialect at all)
    except ArgumentError:  # NoSuchModuleError included
        raise LogUnavailable(_(REFUSED)) from None
    if not issubclass(dialect, SQLiteDialect):
        if os.environ.get(LOG_SERVERS_ENV) != "1":
            raise LogUnavailable(_("This server opens only SQLite prediction logs; its operator can allow PostgreSQL "
                                   "ones ({setting}).").format(setting=f"{LOG_SERVERS_ENV}=1"))
        if parsed.drivername not in POSTGRESQL_DRIVERS or parsed.query:
            raise LogUnavailable(_("Only a PostgreSQL URL without options (postgresql://user@host/db) can be opened "
                                   "here."))
        return url.strip()
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query:
        # Options such as uri=true let SQLite read the path as a URI ('%2e%2e' is '..'): a file, nothing else.
        raise LogUnavailable(_(REFUSED))
    try:
        root = Path(workspace).resolve()
        path = (root / database).resolve()  # an absolute `database` replaces the root; a relative one joins it
        path.exists()  # only raises, for a name longer than the file system allows
    except (OSError, ValueError, RuntimeError):  # ValueError: a NUL byte; RuntimeError: a symbolic link loop
        raise LogUnavailable(_(REFUSED)) from None
    if not path.is_relative_to(root) or path == root:
        raise LogUnavailable(_(REFUSED))
    return f"sqlite:///{path}"


def open_typed_log(url: str, workspace: Path) -> PredictionLog:
    """A log for reading, from a URL a visitor typed; every refusal of a file is REFUSED."""
    resolved = resolve_log_url(url, workspace)
    try:
        return PredictionLog(resolved, create=False)
    except LogUnavailable:
        if is_sqlite_url(resolved):
            raise LogUnavailable(_(REFUSED)) from None
        raise
