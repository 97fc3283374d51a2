"""The secrets of a class: the teacher's key, the join code, the "try it" token, and the guard on guessing codes.

Every key is a random identifier and its HMAC with the server's secret (core/paths.py), each kind under its own
purpose string, so a key of one kind never passes as another: a student's workspace key is not a teacher key, and
a "try it" token opens one published model's page and nothing else. Join codes are the one short secret: six
letters a child can copy from the board, chosen from an alphabet without lookalikes (no I/L/1, O/Q/0, S/5, Z/2,
B/8, G/6). 18**6 is 34 million codes; `JoinGuard` refuses a browser after a few wrong ones and the whole server
after many in a short while, so guessing the code of a class during its lesson is hopeless.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from pathlib import Path

from core import paths

TEACHER, TRY = "classroom-teacher:", "classroom-try:"
CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY"
CODE_LENGTH = 6
_SIGNED = re.compile(r"^([0-9a-f]{32})([0-9a-f]{32})$")
_TOKEN = re.compile(r"^([0-9a-f]{16})([0-9a-f]{32})$")


def _signature(purpose: str, identifier: str, root: Path | None = None) -> str:
    digest = hmac.new(paths.server_secret(root), (purpose + identifier).encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def new_identifier() -> str:
    return secrets.token_hex(16)


def teacher_key(class_id: str, root: Path | None = None) -> str:
    """The teacher's secret for a class: its id and signature (the id alone opens nothing)."""
    return class_id + _signature(TEACHER, class_id, root)


def class_of_teacher_key(key: str | None, root: Path | None = None) -> str | None:
    """The class id a teacher key names, or None for anything this server did not issue as a teacher key."""
    match = _SIGNED.match(key or "")
    if not match or not hmac.compare_digest(match.group(2), _signature(TEACHER, match.group(1), root)):
        return None
    return match.group(1)


def try_token(entry_id: str, root: Path | None = None) -> str:
    """The token of one published model's "try it" page (entry ids are 16 hex characters)."""
    return entry_id + _signature(TRY, entry_id, root)


def entry_of_try_token(token: str | None, root: Path | None = None) -> str | None:
    match = _TOKEN.match(token or "")
    if not match or not hmac.compare_digest(match.group(2), _signature(TRY, match.group(1), root)):
        return None
    return match.group(1)


def new_join_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normal_code(typed: str | None) -> str | None:
    """What a student typed ("kxd-mpr", " KXD MPR ") as a code, or None when it cannot be one (never a path)."""
    text = re.sub(r"[\s\-_.]", "", (typed or "")[:40]).upper()
    return text if len(text) == CODE_LENGTH and all(c in CODE_ALPHABET for c in text) else None


def shown_code(code: str) -> str:
    """For the board: two groups of three ("KXD-MPR"), easier to copy."""
    return f"{code[:3]}-{code[3:]}"


class TooManyGuesses(Exception):
    """The guard refuses; the message is one sentence for the student."""


class JoinGuard:
    """Wrong join codes, counted per browser session and for the whole server (in memory, per server process).

    A session past `per_session` wrong codes is refused for good (a reload starts a new session, which the server-wide
    window then bounds): a classroom behind one address is never locked out by one child's typos, and guessing from
    many sessions is limited to `per_window` wrong codes every `window_s` seconds for everyone.
    """

    def __init__(self, per_session: int = 5, per_window: int = 100, window_s: float = 600.0) -> None:
        self.per_session, self.per_window, self.window_s = per_session, per_window, window_s
        self._wrong: dict[str, int] = {}
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()

    def check(self, session: str) -> None:
        """Raise TooManyGuesses before a code is even compared, when this session or the server has guessed enough."""
        with self._lock:
            self._forget_old()
            if self._wrong.get(session, 0) >= self.per_session:
                raise TooManyGuesses(f"That was {self.per_session} wrong codes in a row; ask your teacher for the "
                                     "class link or its QR code.")
            if len(self._recent) >= self.per_window:
                raise TooManyGuesses("Too many wrong codes were tried on this server in the last few minutes; please "
                                     "wait a few minutes, or use your teacher's link or QR code.")

    def wrong(self, session: str) -> None:
        with self._lock:
            self._wrong[session] = self._wrong.get(session, 0) + 1
            self._recent.append(time.monotonic())
            if len(self._wrong) > 10_000:  # bounded: the oldest sessions are forgotten first
                self._wrong.pop(next(iter(self._wrong)))

    def left(self, session: str) -> int:
        with self._lock:
            return max(self.per_session - self._wrong.get(session, 0), 0)

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - self.window_s
        while self._recent and self._recent[0] < cutoff:
            self._recent.popleft()
