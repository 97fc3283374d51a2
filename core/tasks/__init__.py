"""The task registry: what kind of answer a model learns to give. One entry per task; nothing else branches on it.

>>> get("single").title
'one label per image'
>>> get(None).name  # runs made before tasks existed are single-label
'single'
"""
from __future__ import annotations

from core.tasks.base import Evaluation, Task
from core.tasks.multi import MultiLabel
from core.tasks.regression import Regression
from core.tasks.single import SingleLabel

TASKS: dict[str, Task] = {task.name: task for task in (SingleLabel(), MultiLabel(), Regression())}
DEFAULT = SingleLabel.name
NAMES: tuple[str, ...] = tuple(TASKS)

__all__ = ["DEFAULT", "NAMES", "TASKS", "Evaluation", "Task", "get"]


def get(name: str | None) -> Task:
    """The task named `name` (the default when None); ValueError with the choices for an unknown one."""
    task = TASKS.get(name or DEFAULT)
    if task is None:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(NAMES)}")
    return task
