"""The teacher's page: create a class, put its code on the board, watch every student's work live, give the class
its data and rules, pause training, show a student's run on the projector. Its address (the teacher key) is the
secret: a student's link never opens it."""
import time

import streamlit as st

from core.classroom import control, dashboard, gallery, keys, roster, starter
from core.classroom.roster import ClassError
from core.classroom.rules import OPTIONAL_PAGES, Rules
from core.i18n import N_, _, ngettext, number, percent
from core.models import backbones
from core.runs import waiting
from core.text import md, plain
from core.training.config import ConfigError
from ui.classroom import link, qr_png, show_run, teacher_class
from ui.common import job_manager, remember, show_error, state_words
from ui.language import in_language

LIVE_S = 3.0
# The titles of OPTIONAL_PAGES (core/classroom/rules.py), translated in the rules form.
PAGE_TITLES = (N_("Label"), N_("Review labels"), N_("Export"), N_("Monitor"), N_("Runs"))
manager = control.attach(job_manager())
classroom, given = teacher_class()
if classroom is None:
    st.title(_("Classroom"))
    if given:
        show_error(_("This teacher link does not open a class on this server; check that you copied all of it."))
    st.markdown(_("Create a class for a lesson: students join with a code or a QR code and a nickname (no e-mail, no "
                  "real name), each in a workspace of their own, and you see everyone's work here."))
    with st.form("create"):
        name = st.text_input(_("Class name"), max_chars=80, placeholder=_("Year 7 science, Tuesday"))
        if st.form_submit_button(_("Create the class"), type="primary"):
            try:
                _created, key = roster.create(name)
            except ClassError as error:
                show_error(str(error))
            else:
                remember("teacher", key)
                st.rerun()
    st.stop()

st.title(md(classroom.name))
st.caption(_("Bookmark this page: its address is your key to the class. Anyone who has it can manage the class, so "
             "do not show it on the projector."))
board, students_tab, rules_tab, queue_tab, gallery_tab = st.tabs([_("Board"), _("Students"), _("Data and rules"),
                                                                  _("Queue"), _("Gallery")])
by_key = {s.workspace_key: s for s in roster.students(classroom)}


def draw_board() -> None:
    join_link = link("join", code=classroom.code)
    left, right = st.columns([2, 1])
    left.markdown("## " + _("Code: {code}").format(code=f"`{keys.shown_code(classroom.code)}`"))
    left.markdown(_("Students scan the QR code or open this link:"))
    left.code(join_link, language=None)
    left.caption(_("Or they open this address and type the code:"))
    left.code(link("join"), language=None)
    right.image(qr_png(join_link), caption=_("Scan to join"), width=260)
    opened = left.toggle(_("Students may join"), value=classroom.joining, key="joining")
    if opened != classroom.joining:
        control.set_joining(classroom, opened)
        st.rerun()


def student_table(rows: list[dashboard.StudentRow]) -> list[dict]:
    table = []
    for row in rows:
        latest = row.runs[0] if row.runs else None
        data = row.data
        table.append({
            _("student"): plain(row.student.nickname),
            _("dataset"): plain(data.name) if data else _("none yet"),
            _("images"): data.images if data and not data.checking else None,
            _("per class"): _("checking...") if data and data.checking else
            plain(" · ".join(f"{k} {v}" for k, v in data.classes.items())) if data else "",
            _("warnings"): len(data.warnings) + (1 if data.error else 0) if data else 0,
            _("runs"): len(row.runs),
            _("latest run"): state_words(latest.state) if latest else "",
            _("progress"): latest.fraction if latest else None,
            _("status"): plain(latest.progress) if latest else "",
            _("best accuracy"): row.best.accuracy if row.best else None})
    return table


@st.fragment(run_every=LIVE_S)
@in_language
def live_students() -> None:
    reader = st.session_state.setdefault(f"dashboard_{classroom.id}", dashboard.Dashboard())
    started = time.perf_counter()
    rows = reader.snapshot(roster.load(classroom.id) or classroom, manager)
    spent = time.perf_counter() - started
    if not rows:
        st.info(_("No student has joined yet. Put the code from the Board tab on the board."))
        return
    st.dataframe(student_table(rows), hide_index=True, column_config={
        _("progress"): st.column_config.ProgressColumn(_("progress"), min_value=0.0, max_value=1.0),
        _("best accuracy"): st.column_config.NumberColumn(_("best accuracy"), format="percent")})
    with st.expander(_("Leaderboard (best finished run of each student)")):
        for place, (nickname, accuracy, run) in enumerate(dashboard.leaderboard(rows), 1):
            st.markdown(_("{place}\\. **{nickname}**: {share} ({data})").format(
                place=place, nickname=md(nickname), share=percent(accuracy), data=md(run.data_name or run.backbone)))
    problems = [(row.student.nickname, w) for row in rows if row.data for w in (*row.data.warnings,
                                                                               *filter(None, [row.data.error]))]
    if problems:
        with st.expander(_("Dataset warnings ({count})").format(count=len(problems))):
            for nickname, warning in problems:
                st.markdown(_("**{nickname}**: {warning}").format(nickname=md(nickname), warning=md(warning)))
    st.caption(ngettext("{count} student · refreshed every {every} s · this refresh took {took} ms",
                        "{count} students · refreshed every {every} s · this refresh took {took} ms", len(rows)).format(
        count=len(rows), every=f"{LIVE_S:.0f}", took=number(spent * 1000)))


@st.fragment(run_every=LIVE_S)  # live, like the table above: a run that finishes appears without a reload
@in_language
def one_student() -> None:
    everyone = roster.students(classroom)
    if not everyone:
        return
    chosen = st.selectbox(_("Student"), everyone, format_func=lambda s: plain(s.nickname), key="chosen_student")
    re_entry = link("", ws=chosen.workspace_key)
    with st.popover(_("Re-entry link (another laptop)")):
        st.caption(_("Give this to the student only: it opens their workspace."))
        st.code(re_entry, language=None)
        st.image(qr_png(re_entry), width=200)
    runs = st.session_state.setdefault(f"dashboard_{classroom.id}", dashboard.Dashboard()).runs(
        chosen.workspace.runs, manager)
    if runs:
        run = st.selectbox(_("Run"), runs, key="chosen_run", format_func=run_words)
        if run.state in ("queued", "running") and st.button(_("Cancel this run"), key="cancel_run"):
            control.cancel_run(classroom, chosen, run.id, manager)
            st.toast(_("Cancelling: it stops after the current batch."))
        if st.toggle(_("Show this run on the projector (read-only)"), key="projector"):
            show_run(chosen.workspace.runs / run.id, key="projector_run")
    confirm = st.checkbox(_("Remove {nickname} from the class and delete their work").format(nickname=md(chosen.nickname)),
                          key="confirm_remove")
    if confirm and st.button(_("Remove"), key="remove"):
        control.remove_student(classroom, chosen.id, manager)
        st.session_state.pop("confirm_remove", None)
        st.rerun()


def run_words(run) -> str:
    """A student's run in the select box: its state, its data, its accuracy (plain text: it holds user names)."""
    data = run.data_name or run.backbone
    if run.accuracy is None:
        return plain(_("{state}: {data}").format(state=state_words(run.state), data=data))
    return plain(_("{state}: {data}, {share}").format(state=state_words(run.state), data=data,
                                                      share=percent(run.accuracy)))


def draw_data_and_rules() -> None:
    st.markdown("#### " + _("Starter data for every student"))
    if classroom.starter:
        st.caption(_("Now: **{name}**").format(name=md(classroom.starter["name"])))
    sets = starter.bundled()
    chosen = st.selectbox(_("A bundled set (free to use, CC0)"), list(sets), format_func=lambda n: sets[n])
    if st.button(_("Give this set to every student"), key="push_bundled"):
        give(lambda: starter.push_bundled(classroom, chosen))
    upload = st.file_uploader(_("Or your own zip of class folders"), type=["zip"], key="starter_upload")
    if upload is not None and st.button(_("Give my zip to every student"), key="push_upload"):
        give(lambda: starter.push(classroom, starter.keep_upload(classroom, upload, upload.size, upload.name),
                                  upload.name))
    st.markdown("#### " + _("What students may do"))
    rules = classroom.rules
    with st.form("rules"):
        cols = st.columns(3)
        advanced = cols[0].checkbox(_("Show the advanced training settings"), rules.advanced)
        fine_tuning = cols[1].checkbox(_("Allow fine-tuning (slow without a GPU)"), rules.fine_tuning)
        allowed = st.multiselect(_("Backbones students may use"), list(backbones.NAMES), list(rules.backbones),
                                 format_func=lambda n: backbones.info(n).title)
        max_epochs = cols[0].number_input(_("Most epochs a run"), 1, 200, rules.max_epochs)
        max_size = cols[1].number_input(_("Largest image size (pixels)"), 32, 1024, rules.max_image_size)
        max_runs = cols[2].number_input(_("Most runs per student"), 1, 200, rules.max_runs)
        hidden = st.multiselect(_("Pages students do not see"), list(OPTIONAL_PAGES), list(rules.hidden_pages),
                                format_func=lambda page: _(OPTIONAL_PAGES[page]))
        if st.form_submit_button(_("Save the rules")):
            try:
                control.set_rules(classroom, Rules(advanced, fine_tuning, tuple(allowed), int(max_epochs),
                                                   int(max_size), int(max_runs), tuple(hidden)))
                st.rerun()
            except ConfigError as error:
                show_error(_("The rules were not saved: {reason}.").format(reason=error))
    st.markdown("#### " + _("Training"))
    if classroom.paused:
        st.warning(_("Training is paused: students' runs wait in the queue."))
        if st.button(_("Resume training"), type="primary", key="resume"):
            control.resume(classroom, manager)
            st.rerun()
    else:
        stop_now = st.checkbox(_("Also stop the runs that are training now"), key="stop_now")
        if st.button(_("Pause all training"), key="pause"):
            control.pause(classroom, manager, cancel_running=stop_now)
            st.rerun()


def give(push) -> None:
    try:
        with st.spinner(_("Checking the data...")):
            push()
    except ClassError as error:
        show_error(str(error))
    else:
        st.success(_("Every student has it now (and so will those who join later)."))


@st.fragment(run_every=LIVE_S)
@in_language
def live_queue() -> None:
    jobs = control.class_jobs(classroom, manager)
    others = len(manager.active()) - len(jobs)
    if not jobs:
        st.info(_("No run of this class is training or waiting."))
    for job in jobs:
        who = by_key.get(job.run_dir.parent.parent.name)
        nickname = who.nickname if who else _("a former student")
        if job.state == "running":
            st.markdown(_("**{nickname}**: training on {device}").format(nickname=md(nickname), device=md(job.device_label)))
        else:
            wait = waiting.estimate(manager, job.id)
            if wait is not None and wait.place.paused:  # the students' sentence says "your teacher": not here
                st.markdown(_("**{nickname}**: queued; it starts when you resume training.").format(nickname=md(nickname)))
            else:
                st.markdown(_("**{nickname}**: queued. {when}").format(nickname=md(nickname),
                                                                        when=md(wait.full()) if wait else ""))
    if others:
        st.caption(_("{count} run(s) of people outside this class are training or waiting on this server too.").format(
            count=others))


def draw_gallery() -> None:
    shown = st.toggle(_("Students see the leaderboard"), value=classroom.leaderboard, key="leaderboard")
    if shown != classroom.leaderboard:
        control.set_leaderboard(classroom, shown)
        st.rerun()
    entries = gallery.entries(classroom)
    if not entries:
        st.info(_("Nobody has published a model yet (students do it on their Class gallery page)."))
    for entry in entries:
        byline = _("**{title}** by {nickname}").format(title=md(entry.title), nickname=md(entry.nickname))
        st.markdown(byline if entry.accuracy is None else _("{byline}, {share}").format(
            byline=byline, share=percent(entry.accuracy)))
        if st.button(_("Take it down"), key=f"down_{entry.id}"):
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
