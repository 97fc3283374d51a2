"""The prediction log: one row per answered image, committed before the answer leaves the service.

SQLite (WAL) under `<workspace>/serving/<run-id>.sqlite` by default, any SQLAlchemy URL otherwise: PostgreSQL
(driver psycopg) for one log shared by several replicas. Inputs themselves are never stored here. A row's id is
the prediction id the client got, so a retried request (same Idempotency-Key) finds its row instead of adding one.
True labels: the first one given stays on the row (the Monitor's accuracy counts it); every label given, with who
gave it and when, goes to the append-only `feedback` table.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Column, func, inspect, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from core import paths
from core.serving.logdb import (  # noqa: F401 - the log's tables and errors are predlog's public names too
    COLUMNS,
    LABEL_CHARS,
    LogUnavailable,
    feedback,
    insert_ignoring_duplicates,
    metadata,
    open_engine,
    predictions,
    prepare_schema,
    unavailable_error,
)

MAX_FEEDBACK = 20  # labels one prediction may receive: enough to correct a mistake, not a channel to flood


class FeedbackFull(RuntimeError):
    """This prediction already received MAX_FEEDBACK labels."""


def workspace_of(run_dir: Path) -> Path:
    """The workspace a run folder belongs to (the folder holding its `runs/`), else the TransferLab home."""
    run_dir = Path(run_dir)
    return run_dir.parent.parent if run_dir.parent.name == "runs" else paths.home()


def default_url(workspace: Path, run_id: str) -> str:
    """The log of a run's services: inside its workspace, so no other workspace can name it."""
    return f"sqlite:///{Path(workspace) / 'serving' / f'{run_id}.sqlite'}"


class PredictionLog:
    """Writes and reads the log; safe to share between threads (and, on PostgreSQL or SQLite, processes)."""

    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        self.engine = open_engine(url, create=create)
        self._columns: list[Column] | None = None
        if create:
            prepare_schema(self.engine)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """All rows in one transaction: when this returns, they are on disk."""
        if not rows:
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(insert_ignoring_duplicates(connection.dialect.name), rows)
        except SQLAlchemyError as error:
            raise unavailable_error(self.engine, "written", error) from error

    def by_id(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Logged rows among `ids` (a retried request's answers)."""
        if not ids:
            return {}
        try:
            with self.engine.connect() as connection:
                found = connection.execute(select(predictions).where(predictions.c.id.in_(ids)))
                return {row.id: dict(row._mapping) for row in found}
        except SQLAlchemyError as error:
            raise unavailable_error(self.engine, "read", error) from error

    def add_feedback(self, prediction_id: str, label: str, client: str = "", source: str = "api") -> str | None:
        """Record a true label; returns the label that counts (the first one given), None when no prediction has
        that id. Raises FeedbackFull once the prediction has MAX_FEEDBACK labels."""
        now, label = time.time(), label[:LABEL_CHARS]
        try:
            with self.engine.begin() as connection:
                where = predictions.c.id == prediction_id
                if connection.execute(select(predictions.c.id).where(where)).first() is None:
                    return None
                given = connection.execute(select(func.count()).select_from(feedback)
                                           .where(feedback.c.prediction_id == prediction_id)).scalar_one()
                if given >= MAX_FEEDBACK:
                    raise FeedbackFull(prediction_id)
                connection.execute(update(predictions).where(where, predictions.c.feedback_label.is_(None))
                                   .values(feedback_label=label, feedback_time=now))
                connection.execute(feedback.insert().values(prediction_id=prediction_id, label=label, time=now,
                                                            client=client[:64], source=source))
                return connection.execute(select(predictions.c.feedback_label).where(where)).scalar_one()
        except SQLAlchemyError as error:
            raise unavailable_error(self.engine, "written", error) from error

    def add_feedback_by_content(self, labels: dict[str, str]) -> int:
        """True labels by image content (sha256 -> label) for every logged answer to that exact image, in one
        transaction; returns how many answers got a label that differs from their latest one."""
        labels = {digest: label[:LABEL_CHARS] for digest, label in labels.items()}
        changed, digests, now = 0, list(labels), time.time()
        with self.engine.begin() as connection:
            for start in range(0, len(digests), 500):  # one scan per 500 digests (content_hash has no index)
                found = connection.execute(select(predictions.c.id, predictions.c.content_hash)
                                           .where(predictions.c.content_hash.in_(digests[start:start + 500]))).all()
                latest = _latest_labels(connection, [prediction_id for prediction_id, _ in found])
                for prediction_id, digest in found:
                    if latest.get(prediction_id) == labels[digest]:
                        continue
                    connection.execute(update(predictions).where(predictions.c.id == prediction_id,
                                                                 predictions.c.feedback_label.is_(None))
                                       .values(feedback_label=labels[digest], feedback_time=now))
                    connection.execute(feedback.insert().values(prediction_id=prediction_id, label=labels[digest],
                                                                time=now, client="", source="label page"))
                    changed += 1
        return changed

    def feedback_history(self, prediction_id: str) -> list[dict[str, Any]]:
        """Every label given to one prediction, oldest first."""
        with self.engine.connect() as connection:
            found = connection.execute(select(feedback).where(feedback.c.prediction_id == prediction_id)
                                       .order_by(feedback.c.number))
            return [dict(row._mapping) for row in found]

    def count(self, model: str | None = None) -> int:
        query = select(func.count()).select_from(predictions)
        if model:
            query = query.where(predictions.c.model == model)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def rows(self, model: str | None = None, since: float | None = None, limit: int = 100_000) -> list[dict[str, Any]]:
        """The newest `limit` rows (oldest first), optionally of one model and after a time. A log written before a
        column existed reads with that column empty."""
        try:
            with self.engine.connect() as connection:
                columns = self._present_columns(connection)
                query = select(*columns).order_by(predictions.c.time.desc()).limit(limit)
                if model:
                    query = query.where(predictions.c.model == model)
                if since is not None:
                    query = query.where(predictions.c.time >= since)
                found = [dict.fromkeys(COLUMNS) | dict(row._mapping) for row in connection.execute(query)]
        except SQLAlchemyError as error:  # no table, wrong schema, unreachable server
            raise unavailable_error(self.engine, "read", error) from error
        return found[::-1]

    def _present_columns(self, connection: Connection) -> list[Column]:
        if self._columns is None:
            present = {c["name"] for c in inspect(connection).get_columns("predictions")}
            self._columns = [c for c in predictions.columns if c.name in present]
        return self._columns

    def models(self) -> list[str]:
        with self.engine.connect() as connection:
            return [m for (m,) in connection.execute(select(predictions.c.model).distinct())]

    def close(self) -> None:
        self.engine.dispose()


def _latest_labels(connection: Connection, prediction_ids: list[str]) -> dict[str, str]:
    """The newest label given to each prediction (the history's, else the row's own from before the history)."""
    latest: dict[str, str] = {}
    if not prediction_ids:
        return latest
    firsts = select(predictions.c.id, predictions.c.feedback_label).where(predictions.c.id.in_(prediction_ids))
    for prediction_id, label in connection.execute(firsts):
        if label is not None:
            latest[prediction_id] = label
    history = (select(feedback.c.prediction_id, feedback.c.label)
               .where(feedback.c.prediction_id.in_(prediction_ids)).order_by(feedback.c.number))
    for prediction_id, label in connection.execute(history):
        latest[prediction_id] = label
    return latest
