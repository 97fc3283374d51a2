"""Classroom mode: a teacher's class, its students' workspaces, its rules, starter data and gallery.

A class is a record under $TRANSFERLAB_HOME/classes/ with a join code and a teacher key (signed, like workspace
keys, under another purpose); each student is a nickname and an ordinary workspace that belongs to the class. The
pages (views/classroom.py, join.py, gallery.py, try.py) call what is here; the engine enforces the class rules when
a run is submitted (`attach`), so hiding a setting on a page is never the only guard. A server without classes
behaves exactly as before: a workspace that belongs to no class is admitted untouched.

    roster     the class, its students, membership      rules     what students may do (checked per run)
    keys       teacher keys, join codes, try tokens      joining   code -> class -> nickname -> workspace
    control    admission, pause, cancel, remove          starter   data pushed to every student
    gallery    publish, try tokens, remix                dashboard the teacher's live view, cheaply
"""
from __future__ import annotations

from core.classroom.control import attach
from core.classroom.roster import ClassError, Classroom, Student, member_of
from core.classroom.rules import Rules

__all__ = ["ClassError", "Classroom", "Rules", "Student", "attach", "member_of", "rules_for"]


def rules_for(workspace_key: str | None) -> Rules | None:
    """The rules a workspace works under: its class's, or None for a workspace in no class (nothing changes)."""
    member = member_of(workspace_key)
    return member[0].rules if member is not None else None
