"""Classroom mode, in the engine: keys and codes, joining, the class rules, starter data, the gallery, removal.

Every test works on real files under its own TRANSFERLAB_HOME (a fresh server secret each), real zips of real JPEGs.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import paths
from core.classroom import control, gallery, joining, keys, roster, rules, starter
from core.classroom.keys import JoinGuard, TooManyGuesses
from core.classroom.roster import ClassError
from core.classroom.rules import Rules
from core.data import public, sample
from core.runs import folder as runs
from core.training.config import ConfigError, TrainConfig
from core.workspace import Workspace
from tests.conftest import class_members, write_zip


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    monkeypatch.setenv("TRANSFERLAB_HOME", str(folder))
    return folder


def finished_run(workspace: Workspace, data: str = "x", accuracy: float = 0.9, labels=("a", "b")) -> runs.Run:
    """A run folder as the pipeline leaves it (the model file's bytes do not matter to the gallery)."""
    run = runs.create(workspace.runs, TrainConfig(data=data, data_name="my pets"))
    run.file("model.safetensors").write_bytes(b"weights")
    run.file("labels.json").write_text(json.dumps(list(labels)))
    run.set_status("finished", val_accuracy=accuracy, started=1.0, finished=2.0)
    return run


# --- keys and codes ---

def test_a_teacher_key_opens_only_its_class_and_no_other_kind_of_key_passes_for_it(home):
    classroom, key = roster.create("Year 7 science")
    assert keys.class_of_teacher_key(key) == classroom.id
    student = joining.join(classroom, "Fox")
    assert keys.class_of_teacher_key(student.workspace_key) is None  # a student's key is not the dashboard's
    assert not paths.is_workspace_key(key)  # and the teacher key is not a workspace
    forged = key[:32] + ("0" if key[32] != "0" else "1") + key[33:]
    assert keys.class_of_teacher_key(forged) is None
    assert keys.class_of_teacher_key(classroom.id + paths.new_workspace_key()[32:]) is None
    assert keys.class_of_teacher_key("../" + key) is None and keys.class_of_teacher_key(None) is None


def test_a_try_token_names_one_entry_and_is_not_a_teacher_or_workspace_key(home):
    token = keys.try_token("0123456789abcdef")
    assert keys.entry_of_try_token(token) == "0123456789abcdef"
    assert keys.entry_of_try_token(keys.try_token("fedcba9876543210")[:16] + token[16:]) is None
    assert keys.class_of_teacher_key(token) is None and not paths.is_workspace_key(token)


def test_join_codes_use_unambiguous_letters_and_forgive_how_they_are_typed(home):
    codes = {keys.new_join_code() for _ in range(200)}
    assert all(len(c) == 6 and set(c) <= set(keys.CODE_ALPHABET) for c in codes) and len(codes) > 190
    assert not set("ILOQSZBG01258") & set(keys.CODE_ALPHABET)
    assert keys.normal_code(" kxd-mpr ") == "KXDMPR" == keys.normal_code("KXD MPR")
    assert keys.normal_code("KXDMP") is None and keys.normal_code("KXDMPI") is None
    assert keys.normal_code("../../etc") is None and keys.shown_code("KXDMPR") == "KXD-MPR"


def test_wrong_codes_are_refused_with_a_sentence_and_then_even_the_right_one(home):
    classroom, _ = roster.create("Art")
    guard = JoinGuard(per_session=3, per_window=100)
    for _ in range(3):
        with pytest.raises(ClassError, match="does not open a class"):
            joining.find_class("AAAAAA" if classroom.code != "AAAAAA" else "CCCCCC", "tab-1", guard)
    with pytest.raises(TooManyGuesses, match="3 wrong codes"):
        joining.find_class(classroom.code, "tab-1", guard)  # refused before the code is even compared
    assert joining.find_class(classroom.code, "tab-2", guard).id == classroom.id  # a classmate is not locked out


def test_guessing_from_many_sessions_is_bounded_for_the_whole_server(home):
    classroom, _ = roster.create("Art")
    guard = JoinGuard(per_session=5, per_window=4, window_s=600)
    wrong = "AAAAAA" if classroom.code != "AAAAAA" else "CCCCCC"
    for session in range(4):
        with pytest.raises(ClassError):
            joining.find_class(wrong, f"fresh-{session}", guard)
    with pytest.raises(TooManyGuesses, match="on this server"):
        joining.find_class(classroom.code, "fresh-new", guard)


# --- joining and membership ---

def test_a_student_joins_with_a_nickname_into_their_own_workspace_of_the_class(home):
    classroom, _ = roster.create("Year 7")
    fox = joining.join(roster.by_code(keys.shown_code(classroom.code).lower()), "Fox")
    owl = joining.join(classroom, "Owl")
    assert fox.workspace_key != owl.workspace_key and paths.is_workspace_key(fox.workspace_key)
    assert roster.member_of(fox.workspace_key)[1].nickname == "Fox"
    assert [s.nickname for s in roster.students(classroom)] == ["Fox", "Owl"]
    assert joining.returning(classroom, fox.workspace_key).id == fox.id
    other, _ = roster.create("Year 8")
    assert joining.returning(other, fox.workspace_key) is None
    assert roster.member_of(paths.new_workspace_key()) is None  # a private workspace is in no class


@pytest.mark.parametrize("nickname, sentence", [
    ("", "type a nickname"), ("anna@school.org", "not an e-mail"), ("x" * 25, "at most 24"),
    ("Fo\u200bx", "invisible"), ("fox", "already taken"), ("ＦＯＸ", "already taken")])
def test_nicknames_are_pseudonyms_refused_with_one_sentence(home, nickname, sentence):
    classroom, _ = roster.create("Year 7")
    joining.join(classroom, "Fox")
    with pytest.raises(ClassError, match=sentence):
        joining.join(classroom, nickname)


def test_a_workspace_cannot_claim_a_class_on_its_own(home):
    classroom, _ = roster.create("Year 7")
    key = paths.new_workspace_key()
    Workspace.of(key).join(classroom.id, "0123456789abcdef")  # its half of a membership, without the class's
    assert roster.member_of(key) is None
    fox = joining.join(classroom, "Fox")
    Workspace.of(key).join(classroom.id, fox.id)  # pretending to be Fox: the class record names Fox's own key
    assert roster.member_of(key) is None


def test_a_closed_class_takes_nobody_new(home):
    classroom, _ = roster.create("Year 7")
    control.set_joining(classroom, False)
    with pytest.raises(ClassError, match="not taking new students"):
        joining.find_class(classroom.code, "tab", JoinGuard())
    with pytest.raises(ClassError, match="not taking new students"):
        joining.join(classroom, "Fox")  # a join form opened before the teacher closed it


# --- the rules ---

def test_the_default_run_passes_the_default_rules_and_each_rule_refuses_with_a_sentence():
    plain = TrainConfig(data="x", epochs=Rules().defaults()["epochs"])
    rules.check(plain, Rules(), runs_so_far=0)
    refusals = {
        "at most 5 epochs": (TrainConfig(data="x", epochs=8), Rules(max_epochs=5), 0),
        "allows these backbones: EfficientNet-Lite0": (TrainConfig(data="x", backbone="resnet18"), Rules(), 0),
        "at most 128 pixels": (TrainConfig(data="x", image_size=160), Rules(max_image_size=128), 0),
        "only the final layer trains": (TrainConfig(data="x", freeze_depth=2), Rules(), 0),
        "used the 3 runs": (plain, Rules(max_runs=3), 3),
        "hidden the advanced settings": (TrainConfig(data="x", lr=0.01), Rules(), 0),
    }
    for sentence, (config, chosen, used) in refusals.items():
        with pytest.raises(ConfigError, match=sentence):
            rules.check(config, chosen, used)
    rules.check(TrainConfig(data="x", lr=0.01, freeze_depth=2), Rules(advanced=True, fine_tuning=True), 0)
    with pytest.raises(ConfigError, match="one run cannot take all"):
        rules.check(plain, Rules(), 0, all_gpus=True)


def test_rules_bound_what_a_teacher_sets_and_a_damaged_record_falls_back_on_the_defaults():
    with pytest.raises(ConfigError):
        Rules(max_epochs=0)
    with pytest.raises(ConfigError):
        Rules(backbones=("not-a-backbone",))
    with pytest.raises(ConfigError):
        Rules(hidden_pages=("data",))  # the lesson's own pages cannot be hidden
    assert Rules.from_dict({"max_epochs": "lots"}) == Rules()
    stored = Rules(max_epochs=5, backbones=("efficientnet_lite0", "resnet18"))
    assert Rules.from_dict(json.loads(json.dumps(stored.to_dict()))) == stored
    assert stored.allowed_range("epochs") == (1, 5) and stored.defaults()["epochs"] == 5
    assert not Rules().page_allowed("monitor") and Rules().page_allowed("export")


# --- starter data ---

def test_pushed_starter_data_reaches_every_student_and_later_joiners(home):
    classroom, _ = roster.create("Year 7")
    fox = joining.join(classroom, "Fox")
    fox.workspace.set_dataset(Path("/elsewhere/own.zip"), "own")
    classroom = starter.push_bundled(classroom, "faces")
    owl = joining.join(classroom, "Owl")
    for student in (fox, owl):
        assert student.workspace.dataset() == {"path": str(public.ASSETS / "classroom" / "faces.zip"),
                                              "name": starter.bundled()["faces"]}
    assert roster.member_of(fox.workspace_key) is not None  # choosing a dataset keeps the membership


def test_a_teachers_upload_is_checked_before_anyone_gets_it(home, tmp_path):
    classroom, _ = roster.create("Year 7")
    fox = joining.join(classroom, "Fox")
    broken = tmp_path / "one-class.zip"
    write_zip(broken, class_members("", {"cats": 4}))
    with open(broken, "rb") as handle:
        kept = starter.keep_upload(classroom, handle, broken.stat().st_size, "one-class.zip")
    with pytest.raises(ClassError):
        starter.push(classroom, kept, "one class only")
    assert fox.workspace.dataset() is None
    good = write_zip(tmp_path / "pets.zip", class_members("", {"cats": 5, "dogs": 5}))
    with open(good, "rb") as handle:
        kept = starter.keep_upload(classroom, handle, good.stat().st_size, "pets.zip")
    starter.push(classroom, kept, "pets")
    assert fox.workspace.dataset()["name"] == "pets"
    assert public.shared_scope(kept) == f"shared:class-{classroom.id}"  # the class shares its features


def test_the_bundled_sets_are_real_class_folders_and_are_public(home):
    from core.data.datasets import inspect_data

    for name in starter.bundled():
        path = Path(sets_path(name))
        report = inspect_data(path, home)
        assert report.trainable and min(report.classes.values()) >= 16, name
        assert public.shared_scope(path) == f"public:{public.digest(path)}"


def sets_path(name: str) -> Path:
    from core.classroom import sets

    return sets.path_of(name)


# --- gallery ---

def test_a_published_model_opens_by_its_token_only_until_it_is_taken_down(home):
    classroom, _ = roster.create("Year 7")
    fox, owl = joining.join(classroom, "Fox"), joining.join(classroom, "Owl")
    run = finished_run(fox.workspace)
    entry = gallery.publish(classroom, fox, run.id)
    assert gallery.publish(classroom, fox, run.id) == entry  # once
    found, path = gallery.by_token(entry.token)
    assert path == run.path and found.nickname == "Fox" and found.title == "my pets" and found.accuracy == 0.9
    assert fox.workspace_key not in json.dumps(found.__dict__) and fox.workspace_key not in entry.token
    with pytest.raises(ClassError, match="Only the student who published"):
        gallery.unpublish(classroom, entry.id, student=owl)
    gallery.unpublish(classroom, entry.id, student=fox)
    assert gallery.by_token(entry.token) is None and gallery.entries(classroom) == []


def test_only_a_finished_run_of_ones_own_workspace_can_be_published(home):
    classroom, _ = roster.create("Year 7")
    fox, owl = joining.join(classroom, "Fox"), joining.join(classroom, "Owl")
    running = runs.create(fox.workspace.runs, TrainConfig(data="x"))
    with pytest.raises(ClassError, match="Only a finished run"):
        gallery.publish(classroom, fox, running.id)
    with pytest.raises(ClassError):
        gallery.publish(classroom, owl, finished_run(fox.workspace).id)  # Fox's run, published by Owl
    with pytest.raises(ClassError):
        gallery.publish(classroom, fox, "../../" + "0" * 26)


def test_remixing_copies_a_classmates_data_into_ones_own_store_and_points_at_public_data(home, tmp_path):
    classroom, _ = roster.create("Year 7")
    fox, owl = joining.join(classroom, "Fox"), joining.join(classroom, "Owl")
    upload = fox.workspace.new_upload()
    write_zip(upload, class_members("", {"cats": 4, "dogs": 4}))
    entry = gallery.publish(classroom, fox, finished_run(fox.workspace, data=str(upload)).id)
    name = gallery.remix(classroom, entry.id, owl)
    chosen = Path(owl.workspace.dataset()["path"])
    assert name == "my pets (remixed from Fox)" and chosen.is_relative_to(owl.workspace.datasets)
    assert sorted(p.parent.name for p in chosen.rglob("*.jpg")) == ["cats"] * 4 + ["dogs"] * 4
    upload.unlink()  # Fox deletes their upload: Owl's copy stays
    assert len(list(chosen.rglob("*.jpg"))) == 8
    shared = gallery.publish(classroom, fox, finished_run(fox.workspace, data=str(sample.SAMPLE_ZIP)).id)
    gallery.remix(classroom, shared.id, owl)
    assert owl.workspace.dataset()["path"] == str(sample.SAMPLE_ZIP)  # nothing copied: still the shared sample


def test_a_run_trained_on_data_outside_the_publishers_workspace_cannot_be_remixed(home, tmp_path):
    classroom, _ = roster.create("Year 7")
    fox, owl = joining.join(classroom, "Fox"), joining.join(classroom, "Owl")
    elsewhere = write_zip(tmp_path / "server-files.zip", class_members("", {"a": 3, "b": 3}))
    entry = gallery.publish(classroom, fox, finished_run(fox.workspace, data=str(elsewhere)).id)
    with pytest.raises(ClassError, match="cannot be remixed"):
        gallery.remix(classroom, entry.id, owl)


# --- removing a student ---

def test_a_removed_student_leaves_no_trace_in_the_class(home):
    from core.runs.jobs import JobManager

    classroom, _ = roster.create("Year 7")
    fox = joining.join(classroom, "Fox")
    entry = gallery.publish(classroom, fox, finished_run(fox.workspace).id)
    control.remove_student(classroom, fox.id, JobManager(home, gpu_count=0, mps=False))
    assert roster.students(classroom) == [] and not fox.workspace.root.exists()
    assert roster.member_of(fox.workspace_key) is None and gallery.by_token(entry.token) is None
    with pytest.raises(ClassError):
        control.remove_student(classroom, fox.id, JobManager(home, gpu_count=0, mps=False))
