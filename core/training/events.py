"""The closed set of training events, the append-only log they go to, and a reader of that log on disk.

The log is *state*: the training process appends every event as one JSON line to the run's `metrics.jsonl`, and
readers (the live view, the CLI) follow that file. Stopping is *control*: a stop request (core.runs.folder.StopFile).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_STARTED = "run_started"
FEATURES = "features"  # the frozen stages' pass over the images, before the first epoch: done of total
BATCH_END = "batch_end"
EPOCH_END = "epoch_end"
RUN_FINISHED = "run_finished"
RUN_FAILED = "run_failed"
RUN_CANCELLED = "run_cancelled"
COMPARE_PROGRESS = "compare_progress"  # a comparison job (core.runs.compare_job): backbone step of steps, its stage
EVENT_KINDS: tuple[str, ...] = (RUN_STARTED, FEATURES, BATCH_END, EPOCH_END, RUN_FINISHED, RUN_FAILED, RUN_CANCELLED,
                                COMPARE_PROGRESS)
TERMINAL_KINDS: frozenset[str] = frozenset({RUN_FINISHED, RUN_FAILED, RUN_CANCELLED})


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any]
    time: float = field(default_factory=time.time)

    def as_record(self) -> dict[str, Any]:
        return {"event": self.kind, "time": round(self.time, 3), **self.data}


class EventLog:
    """Append-only list of events behind a lock; readers keep a cursor and ask for what is new.

    With a path, every event is also appended to that file as one JSON line (one write call per line, so a
    reader in another process sees whole lines or a torn last one, never interleaved ones)."""

    def __init__(self, jsonl_path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._jsonl_path = jsonl_path

    def emit(self, kind: str, **data: Any) -> Event:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {EVENT_KINDS}")
        event = Event(kind, data)
        with self._lock:
            self._events.append(event)
            if self._jsonl_path is not None:
                with self._jsonl_path.open("a", encoding="utf-8") as sink:
                    sink.write(json.dumps(event.as_record(), ensure_ascii=False) + "\n")
        return event

    def since(self, cursor: int = 0) -> tuple[list[Event], int]:
        """Events from position `cursor` on, and the cursor to pass next time."""
        with self._lock:
            new = self._events[cursor:]
            return new, cursor + len(new)

    def of_kind(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.kind == kind]

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


class JsonlTail:
    """Follows a growing metrics.jsonl: each `read()` parses only the bytes added since the last one.

    A line still being written (no newline yet) waits for the next read; a line that is not a JSON object
    (torn by a crash, or damaged) is skipped and counted in `skipped`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.skipped = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as source:
                source.seek(self.offset)
                chunk = source.read()
        except OSError:
            return []
        complete = chunk.rfind(b"\n") + 1
        self.offset += complete
        return self._parse(chunk[:complete])

    def read_to_end(self) -> list[dict[str, Any]]:
        """Everything new, including a last line without its newline (the writer is gone)."""
        records = self.read()
        try:
            rest = self.path.read_bytes()[self.offset:]
        except OSError:
            return records
        self.offset += len(rest)
        return records + self._parse(rest)

    def _parse(self, data: bytes) -> list[dict[str, Any]]:
        records = []
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("event"), str):
                records.append(record)
            else:
                self.skipped += 1
        return records


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a run's metrics.jsonl; torn or damaged lines are skipped (see JsonlTail)."""
    return JsonlTail(path).read_to_end()
