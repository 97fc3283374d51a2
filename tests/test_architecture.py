"""The house rules that keep the code livable, checked by the tools made for them, not by memory."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_packages_form_layers_without_cycles_lazy_imports_included():
    """.importlinter: each package of core/ imports only those below it (grimp reads function-level imports too),
    and the engine never imports Streamlit."""
    result = subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_runtime_requirements_cover_every_import_of_the_app():
    """deptry: every package the app, its pages and the engine import is in requirements.txt itself (not only in
    requirements-dev.txt or as another package's dependency), so the README's app install runs every page."""
    result = subprocess.run([str(BIN / "deptry"), ".", "--requirements-files", "requirements.txt"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


def test_docstring_examples_run():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "--doctest-modules", "-p", "no:cacheprovider",
                             "core/models", "core/tasks", "core/text.py"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
