"""A student joins a class: a code (typed, or in the board's link or QR code), then a nickname. Nothing else is asked.

The code is checked behind the guard (core.classroom.keys.JoinGuard), so a browser that guesses is refused, and a
closed class takes nobody new. The new student's workspace key is what the pages keep in the URL, as for any
workspace; the same browser finds it again (the page also keeps it in a cookie for this class), and the teacher can
hand out a re-entry link if a laptop changes.
"""
from __future__ import annotations

from core.classroom import keys, roster
from core.classroom.roster import ClassError, Classroom, Student

GUARD = keys.JoinGuard()  # one per server process, shared by every session


def find_class(code: str | None, session: str, guard: keys.JoinGuard = GUARD) -> Classroom:
    """The class a code opens; raises TooManyGuesses or ClassError (one sentence each)."""
    guard.check(session)
    classroom = roster.by_code(code)
    if classroom is None:
        guard.wrong(session)
        left = guard.left(session)
        more = f" {left} more tr{'ies' if left != 1 else 'y'} left." if left else ""
        raise ClassError(f"That code does not open a class; check the letters on the board.{more}")
    if not classroom.joining:
        raise ClassError("This class is not taking new students right now; ask your teacher.")
    return classroom


def join(classroom: Classroom, nickname: str) -> Student:
    current = roster.load(classroom.id)
    if current is None or not current.joining:
        raise ClassError("This class is not taking new students right now; ask your teacher.")
    return roster.add_student(current, nickname)


def returning(classroom: Classroom, workspace_key: str | None) -> Student | None:
    """The student of this class whose workspace key a browser still holds (its URL or cookie), else None."""
    member = roster.member_of(workspace_key)
    return member[1] if member is not None and member[0].id == classroom.id else None
