"""The label audit finds planted label errors, explains when it cannot run, and writes a corrected zip."""
from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.data import sample
from core.files import write_json
from core.insight.audit import AuditImpossible, audit, corrected_zip
from core.insight.embeddings import FeatureSpec
from core.models.features import FeatureCache

SPEC = FeatureSpec(image_size=96)
CACHE = FeatureCache(None)  # in memory: the module's audits extract each image's features once
APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def noisy_folder(tmp_path_factory) -> tuple[Path, set[str]]:
    """120 generated shapes, 10% of them moved (seeded) into a wrong class folder."""
    folder = sample.write_folder(tmp_path_factory.mktemp("noisy"), per_class=40, size=96, seed=5)
    rng = random.Random(0)
    files = sorted(folder.rglob("*.jpg"))
    flipped = set()
    for path in rng.sample(files, len(files) // 10):
        wrong = rng.choice([s for s in sample.SHAPES if s != path.parent.name])
        path.rename(folder / wrong / f"moved_{path.name}")
        flipped.add(f"{wrong}/moved_{path.name}")
    return folder, flipped


@pytest.fixture(scope="module")
def audited(noisy_folder, tmp_path_factory):
    return audit(noisy_folder[0], SPEC, folds=5, seed=0, work_dir=tmp_path_factory.mktemp("work"), cache=CACHE)


def test_top_15_percent_holds_most_planted_label_errors(audited, noisy_folder):
    top = audited.ranking()[:int(0.15 * len(audited.records))]
    caught = {audited.records[i].path for i in top} & noisy_folder[1]
    assert len(caught) >= 0.7 * len(noisy_folder[1]), (len(caught), len(noisy_folder[1]))
    first = audited.to_json()["label_issues"][0]
    assert first["given"] != first["suggested"] and 0 <= first["score"] <= 1


def test_audit_is_seeded(audited, noisy_folder, tmp_path):
    again = audit(noisy_folder[0], SPEC, folds=5, seed=0, work_dir=tmp_path, cache=CACHE)
    assert again.ranking()[:20] == audited.ranking()[:20]


def test_cli_prints_the_documented_json_with_inspect_paths(noisy_folder, capsys, tmp_path):
    copy = tmp_path / "with_copy"
    for path in noisy_folder[0].rglob("*.jpg"):
        target = copy / path.relative_to(noisy_folder[0])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (copy / "circle" / "again.jpg").write_bytes((copy / "circle" / "circle_000.jpg").read_bytes())
    assert main(["audit", str(copy), "--folds", "3", "--image-size", "96"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"label_issues", "near_duplicates", "outliers", "folds", "seconds"}
    assert result["folds"] == 3
    assert {"path", "given", "suggested", "score"} == set(result["label_issues"][0])
    pairs = [{d["a"], d["b"]} for d in result["near_duplicates"]]
    assert {"circle/circle_000.jpg", "circle/again.jpg"} in pairs
    known = {p.relative_to(copy).as_posix() for p in copy.rglob("*.jpg")}
    assert {i["path"] for i in result["label_issues"] + result["outliers"]} <= known


def test_one_class_or_too_few_images_says_why(tmp_path, capsys):
    sample.write_folder(tmp_path / "one", per_class=8, size=64, shapes=("circle",))
    with pytest.raises(AuditImpossible, match="at least two classes|two folders"):
        audit(tmp_path / "one", SPEC, work_dir=tmp_path)
    sample.write_folder(tmp_path / "few", per_class=3, size=64, shapes=("circle", "square"))
    assert main(["audit", str(tmp_path / "few"), "--folds", "5"]) == 2
    error = capsys.readouterr().err
    assert "needs at least 5 images" in error and "Traceback" not in error


def test_corrected_zip_applies_relabel_and_remove(audited, tmp_path):
    first, second = audited.records[0], audited.records[1]
    new_label = next(label for label in audited.labels if label != first.label)
    marks = {first.path: {"action": "relabel", "label": new_label}, second.path: {"action": "remove", "label": None}}
    path = corrected_zip(audited.root, audited.records, marks, tmp_path / "fixed.zip")
    names = set(zipfile.ZipFile(path).namelist())
    assert f"{new_label}/{Path(first.path).name}" in names
    assert first.path not in names and second.path not in names
    assert len(names) == len(audited.records) - 1


def test_review_page_shows_suspects_and_offers_the_corrected_zip(noisy_folder):
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("views/data.py").run()
    ws = at.query_params["ws"]
    from core import paths
    (paths.home() / "workspaces" / ws).mkdir(parents=True, exist_ok=True)  # created on the first save
    write_json(paths.home() / "workspaces" / ws / "workspace.json",
                    {"dataset": {"path": str(noisy_folder[0]), "name": "noisy *shapes*"}})
    at.switch_page("views/review.py").run()
    at.button(key="run_audit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Probably wrong labels" in h.value for h in at.subheader)
    assert any("never saw this image" in c.value for c in at.caption)
    flagged_radio = at.radio[0]
    flagged_radio.set_value("remove").run()
    at.button(key="prepare_zip").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.get("download_button"), "the corrected zip is offered"
    at.button(key="save_version").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Saved as version" in s.value for s in at.success)
