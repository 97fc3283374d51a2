"""The teacher's page: create a class, put its code on the board, watch every student's work live, give the class
its data and rules, pause training, show a student's run on the projector. Its address (the teacher key) is the
secret: a student's link never opens it."""
import time

import streamlit as st

from core.classroom import control, dashboard, gallery, keys, roster, starter
from core.classroom.roster import ClassError
from core.classroom.rules import OPTIONAL_PAGES, Rules
from core.models import backbones
from core.runs import waiting
from core.text import md, plain
from core.training.config import ConfigError
from ui.classroom import link, qr_png, show_run, teacher_class
from ui.common import job_manager, remember, show_error

LIVE_S = 3.0
manager = control.attach(job_manager())
classroom, given = teacher_class()
if classroom is None:
    st.title("Classroom")
    if given:
        show_error("This teacher link does not open a class on this server; check that you copied all of it.")
    st.markdown("Create a class for a lesson: students join with a code or a QR code and a nickname (no e-mail, no "
                "real name), each in a workspace of their own, and you see everyone's work here.")
    with st.form("create"):
        name = st.text_input("Class name", max_chars=80, placeholder="Year 7 science, Tuesday")
        if st.form_submit_button("Create the class", type="primary"):
            try:
                _, key = roster.create(name)
            except ClassError as error:
                show_error(str(error))
            else:
                remember("teacher", key)
                st.rerun()
    st.stop()

st.title(md(classroom.name))
st.caption("Bookmark this page: its address is your key to the class. Anyone who has it can manage the class, so "
           "do not show it on the projector.")
board, students_tab, rules_tab, queue_tab, gallery_tab = st.tabs(["Board", "Students", "Data and rules", "Queue",
                                                                  "Gallery"])
by_key = {s.workspace_key: s for s in roster.students(classroom)}


def draw_board() -> None:
    join_link = link("join", code=classroom.code)
    left, right = st.columns([2, 1])
    left.markdown(f"## Code: `{keys.shown_code(classroom.code)}`")
    left.markdown("Students scan the QR code or open this link:")
    left.code(join_link, language=None)
    left.caption("Or they open this address and type the code:")
    left.code(link("join"), language=None)
    right.image(qr_png(join_link), caption="Scan to join", width=260)
    opened = left.toggle("Students may join", value=classroom.joining, key="joining")
    if opened != classroom.joining:
        control.set_joining(classroom, opened)
        st.rerun()


def student_table(rows: list[dashboard.StudentRow]) -> list[dict]:
    table = []
    for row in rows:
        latest = row.runs[0] if row.runs else None
        data = row.data
        table.append({
            "student": plain(row.student.nickname),
            "dataset": plain(data.name) if data else "none yet",
            "images": data.images if data and not data.checking else None,
            "per class": "checking..." if data and data.checking else
            plain(" · ".join(f"{k} {v}" for k, v in data.classes.items())) if data else "",
            "warnings": len(data.warnings) + (1 if data.error else 0) if data else 0,
            "runs": len(row.runs),
            "latest run": latest.state if latest else "",
            "progress": latest.fraction if latest else None,
            "status": plain(latest.progress) if latest else "",
            "best accuracy": row.best.accuracy if row.best else None})
    return table


@st.fragment(run_every=LIVE_S)
def live_students() -> None:
    reader = st.session_state.setdefault(f"dashboard_{classroom.id}", dashboard.Dashboard())
    started = time.perf_counter()
    rows = reader.snapshot(roster.load(classroom.id) or classroom, manager)
    spent = time.perf_counter() - started
    if not rows:
        st.info("No student has joined yet. Put the code from the Board tab on the board.")
        return
    st.dataframe(student_table(rows), hide_index=True, column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
        "best accuracy": st.column_config.NumberColumn("best accuracy", format="percent")})
    with st.expander("Leaderboard (best finished run of each student)"):
        for place, (nickname, accuracy, run) in enumerate(dashboard.leaderboard(rows), 1):
            st.markdown(f"{place}\\. **{md(nickname)}**: {accuracy:.0%} ({md(run.data_name or run.backbone)})")
    problems = [(row.student.nickname, w) for row in rows if row.data for w in (*row.data.warnings,
                                                                               *filter(None, [row.data.error]))]
    if problems:
        with st.expander(f"Dataset warnings ({len(problems)})"):
            for nickname, warning in problems:
                st.markdown(f"**{md(nickname)}**: {md(warning)}")
    st.caption(f"{len(rows)} students · refreshed every {LIVE_S:.0f} s · this refresh took {spent * 1000:.0f} ms")


@st.fragment(run_every=LIVE_S)  # live, like the table above: a run that finishes appears without a reload
def one_student() -> None:
    everyone = roster.students(classroom)
    if not everyone:
        return
    chosen = st.selectbox("Student", everyone, format_func=lambda s: plain(s.nickname), key="chosen_student")
    re_entry = link("", ws=chosen.workspace_key)
    with st.popover("Re-entry link (another laptop)"):
        st.caption("Give this to the student only: it opens their workspace.")
        st.code(re_entry, language=None)
        st.image(qr_png(re_entry), width=200)
    runs = st.session_state.setdefault(f"dashboard_{classroom.id}", dashboard.Dashboard()).runs(
        chosen.workspace.runs, manager)
    if runs:
        run = st.selectbox("Run", runs, key="chosen_run", format_func=lambda r: plain(
            f"{r.state}: {r.data_name or r.backbone}" + (f", {r.accuracy:.0%}" if r.accuracy is not None else "")))
        if run.state in ("queued", "running") and st.button("Cancel this run", key="cancel_run"):
            control.cancel_run(classroom, chosen, run.id, manager)
            st.toast("Cancelling: it stops after the current batch.")
        if st.toggle("Show this run on the projector (read-only)", key="projector"):
            show_run(chosen.workspace.runs / run.id, key="projector_run")
    confirm = st.checkbox(f"Remove {md(chosen.nickname)} from the class and delete their work", key="confirm_remove")
    if confirm and st.button("Remove", key="remove"):
        control.remove_student(classroom, chosen.id, manager)
        st.session_state.pop("confirm_remove", None)
        st.rerun()


def draw_data_and_rules() -> None:
    st.markdown("#### Starter data for every student")
    if classroom.starter:
        st.caption(f"Now: **{md(classroom.starter['name'])}**")
    sets = starter.bundled()
    chosen = st.selectbox("A bundled set (free to use, CC0)", list(sets), format_func=lambda n: sets[n])
    if st.button("Give this set to every student", key="push_bundled"):
        give(lambda: starter.push_bundled(classroom, chosen))
    upload = st.file_uploader("Or your own zip of class folders", type=["zip"], key="starter_upload")
    if upload is not None and st.button("Give my zip to every student", key="push_upload"):
        give(lambda: starter.push(classroom, starter.keep_upload(classroom, upload, upload.size, upload.name),
                                  upload.name))
    st.markdown("#### What students may do")
    rules = classroom.rules
    with st.form("rules"):
        cols = st.columns(3)
        advanced = cols[0].checkbox("Show the advanced training settings", rules.advanced)
        fine_tuning = cols[1].checkbox("Allow fine-tuning (slow without a GPU)", rules.fine_tuning)
        allowed = st.multiselect("Backbones students may use", list(backbones.NAMES), list(rules.backbones),
                                 format_func=lambda n: backbones.info(n).title)
        max_epochs = cols[0].number_input("Most epochs a run", 1, 200, rules.max_epochs)
        max_size = cols[1].number_input("Largest image size (pixels)", 32, 1024, rules.max_image_size)
        max_runs = cols[2].number_input("Most runs per student", 1, 200, rules.max_runs)
        hidden = st.multiselect("Pages students do not see", list(OPTIONAL_PAGES), list(rules.hidden_pages),
                                format_func=OPTIONAL_PAGES.get)
        if st.form_submit_button("Save the rules"):
            try:
                control.set_rules(classroom, Rules(advanced, fine_tuning, tuple(allowed), int(max_epochs),
                                                   int(max_size), int(max_runs), tuple(hidden)))
                st.rerun()
            except ConfigError as error:
                show_error(f"The rules were not saved: {error}.")
    st.markdown("#### Training")
    if classroom.paused:
        st.warning("Training is paused: students' runs wait in the queue.")
        if st.button("Resume training", type="primary", key="resume"):
            control.resume(classroom, manager)
            st.rerun()
    else:
        stop_now = st.checkbox("Also stop the runs that are training now", key="stop_now")
        if st.button("Pause all training", key="pause"):
            control.pause(classroom, manager, cancel_running=stop_now)
            st.rerun()


def give(push) -> None:
    try:
        with st.spinner("Checking the data..."):
            push()
    except ClassError as error:
        show_error(str(error))
    else:
        st.success("Every student has it now (and so will those who join later).")


@st.fragment(run_every=LIVE_S)
def live_queue() -> None:
    jobs = control.class_jobs(classroom, manager)
    others = len(manager.active()) - len(jobs)
    if not jobs:
        st.info("No run of this class is training or waiting.")
    for job in jobs:
        who = by_key.get(job.run_dir.parent.parent.name)
        nickname = who.nickname if who else "a former student"
        if job.state == "running":
            st.markdown(f"**{md(nickname)}**: training on {md(job.device_label)}")
        else:
            wait = waiting.estimate(manager, job.id)
            if wait is not None and wait.place.paused:  # the students' sentence says "your teacher": not here
                st.markdown(f"**{md(nickname)}**: queued; it starts when you resume training.")
            else:
                st.markdown(f"**{md(nickname)}**: queued. " + (md(wait.full())
                                                             if wait else ""))
    if others:
        st.caption(f"{others} run(s) of people outside this class are training or waiting on this server too.")


def draw_gallery() -> None:
    shown = st.toggle("Students see the leaderboard", value=classroom.leaderboard, key="leaderboard")
    if shown != classroom.leaderboard:
        control.set_leaderboard(classroom, shown)
        st.rerun()
    entries = gallery.entries(classroom)
    if not entries:
        st.info("Nobody has published a model yet (students do it on their Class gallery page).")
    for entry in entries:
        score = f", {entry.accuracy:.0%}" if entry.accuracy is not None else ""
        st.markdown(f"**{md(entry.title)}** by {md(entry.nickname)}{score}")
        if st.button("Take it down", key=f"down_{entry.id}"):
            gallery.unpublish(classroom, entry.id)
            st.rerun()


with board:
    draw_board()
with students_tab:
    live_students()
    one_student()
with rules_tab:
    draw_data_and_rules()
with queue_tab:
    live_queue()
with gallery_tab:
    draw_gallery()
