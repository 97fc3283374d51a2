"""The teacher's hands on the class's training: every run a student submits is admitted here (the class rules,
core.classroom.rules), a paused class's runs wait in the queue, and a run or a student can be taken out.

`attach(manager)` plugs the admission into the server's JobManager once, so it applies to every page that starts a
run (Train, Runs' "train again", Label's "train on this version"), not only to the pages that hide what is not
allowed. Workspaces outside any class are admitted as before, untouched.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from core import paths
from core.classroom import gallery, roster
from core.classroom.roster import ClassError, Classroom, Student
from core.classroom.rules import Rules, check
from core.files import read_json
from core.runs.folder import ACTIVE_STATES, Run, list_runs
from core.runs.jobs import Job, JobManager
from core.training.config import TrainConfig

COUNTED_STATES = ACTIVE_STATES | {"finished"}  # a run that failed or was cancelled does not use up a student's runs
REMOVE_WAIT_S = 20.0  # a removed student's running run is given this long to stop before its folder goes


def attach(manager: JobManager) -> JobManager:
    """Admit every run of this manager through the class rules, and hold the runs of classes paused now."""
    if getattr(manager.admit, "classroom", False):
        return manager

    def admit(config: TrainConfig, runs_root: Path, all_gpus: bool) -> str | None:
        return _admit(manager, config, runs_root, all_gpus)
    admit.classroom = True  # type: ignore[attr-defined]
    manager.admit = admit
    for path in roster.classes_root().glob("*/class.json"):
        data = read_json(path, {})
        if isinstance(data, dict) and data.get("paused") and isinstance(data.get("id"), str):
            manager.hold(data["id"])
    return manager


def workspace_key_of(runs_root: Path) -> str | None:
    """The workspace key whose runs folder this is, or None (a command-line run elsewhere)."""
    runs_root = Path(runs_root)
    if runs_root.name != "runs" or runs_root.parent.parent.resolve() != (paths.home() / "workspaces").resolve():
        return None
    return runs_root.parent.name


def _admit(manager: JobManager, config: TrainConfig, runs_root: Path, all_gpus: bool) -> str | None:
    member = roster.member_of(workspace_key_of(runs_root))
    if member is None:
        return None
    classroom, _ = member
    used = sum(r.state in COUNTED_STATES for r in list_runs(runs_root))
    check(config, classroom.rules, used, all_gpus)
    if classroom.paused:
        manager.hold(classroom.id)  # also after a server restart: the queue forgets, the class record does not
    return classroom.id


def set_rules(classroom: Classroom, rules: Rules) -> Classroom:
    return roster.update(classroom.id, rules=rules)


def pause(classroom: Classroom, manager: JobManager, cancel_running: bool = False) -> Classroom:
    """Hold the class's queued runs (and any submitted until resume); running ones finish, or are cancelled."""
    updated = roster.update(classroom.id, paused=True)
    manager.hold(classroom.id)
    if cancel_running:
        for job in class_jobs(classroom, manager):
            if job.state == "running":
                manager.cancel(job.id)
    return updated


def resume(classroom: Classroom, manager: JobManager) -> Classroom:
    updated = roster.update(classroom.id, paused=False)
    manager.release(classroom.id)
    return updated


def class_jobs(classroom: Classroom, manager: JobManager) -> list[Job]:
    """The class's queued and running jobs, running first, then in the order they start."""
    return [job for job in manager.active() if job.group == classroom.id]


def cancel_run(classroom: Classroom, student: Student, run_id: str, manager: JobManager) -> bool:
    """Stop one of a student's runs: through the queue when this server runs it, else by its stop file."""
    run = Run(student.workspace.runs / run_id)
    if not run.path.is_dir() or run.path.parent != student.workspace.runs or not run.is_running():
        return False
    job = manager.get(run_id)
    if job is None or not manager.cancel(run_id):
        run.stop.set()
    return True


def remove_student(classroom: Classroom, student_id: str, manager: JobManager) -> None:
    """Take a student out of the class: their runs stop, their models leave the gallery, and their workspace
    (nickname, data, runs) is deleted. Their link then opens nothing of the class."""
    student = roster.student(classroom, student_id)
    if student is None:
        raise ClassError("This student is not in the class (any more).")
    stopping = []
    for summary in list_runs(student.workspace.runs):
        if summary.state in ACTIVE_STATES:
            cancel_run(classroom, student, summary.id, manager)
            if (job := manager.get(summary.id)) is not None:
                stopping.append(job)
    for job in stopping:
        job.wait(REMOVE_WAIT_S)
    for entry in gallery.entries(classroom):
        if entry.student_id == student_id:
            gallery.unpublish(classroom, entry.id)
    roster.forget_student(classroom, student_id)
    _delete(student.workspace.root)


def _delete(folder: Path) -> None:
    if not folder.exists():
        return
    aside = folder.with_name(f".removed-{uuid.uuid4().hex[:8]}")
    folder.rename(aside)  # gone at once; the files may take a moment
    shutil.rmtree(aside, ignore_errors=True)


def set_joining(classroom: Classroom, open_: bool) -> Classroom:
    return roster.update(classroom.id, joining=bool(open_))


def set_leaderboard(classroom: Classroom, shown: bool) -> Classroom:
    return roster.update(classroom.id, leaderboard=bool(shown))
