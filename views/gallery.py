"""The class gallery: publish a model you trained, try your classmates' models, remix their data."""
import streamlit as st

from core.classroom import control, dashboard, gallery
from core.classroom.roster import ClassError
from core.i18n import _, listing, percent
from core.text import md, plain
from ui.classroom import link, qr_png, student
from ui.common import describe_run, job_manager, show_error

control.attach(job_manager())
st.title(_("Class gallery"))
member = student()
if member is None:
    st.info(_("The gallery belongs to a class. Join one with your teacher's code or QR code."))
    st.page_link("views/join.py", label=_("Join a class"), icon=":material/group_add:")
    st.stop()
classroom, me = member

finished = me.workspace.finished_runs()
with st.expander(_("Publish one of my models"), expanded=not gallery.entries(classroom)):
    if not finished:
        st.caption(_("Train a model first (2. Train); then it can go here."))
    else:
        run = st.selectbox(_("Model"), finished, format_func=lambda r: plain(describe_run(r)), key="publish_run")
        title = st.text_input(_("Title"), max_chars=gallery.MAX_TITLE, placeholder=_("What does it recognise?"))
        st.caption(_("Your classmates will see your nickname, this model and its classes, and may copy its images."))
        if st.button(_("Publish to the class"), type="primary", key="publish"):
            try:
                gallery.publish(classroom, me, run.id, title)
                st.rerun()
            except ClassError as error:
                show_error(str(error))

entries = gallery.entries(classroom)
if not entries:
    st.info(_("Nobody has published a model yet."))
for entry in entries:
    with st.container(border=True):
        byline = _("**{title}** by {nickname}").format(title=md(entry.title), nickname=md(entry.nickname))
        if entry.accuracy is not None:
            byline += " · " + _("{share} on its validation images").format(share=percent(entry.accuracy))
        st.markdown(byline)
        st.caption(md(_("Recognises: {names}").format(names=listing(entry.labels, 12))))
        cols = st.columns(3)
        cols[0].page_link("views/try.py", label=_("Try it"), icon=":material/photo_camera:",
                          query_params={"model": entry.token})
        with cols[1].popover(_("Try it on a phone")):
            st.image(qr_png(link("try", model=entry.token)), width=220)
            st.caption(_("The link opens this model only."))
        if entry.student_id == me.id:
            if cols[2].button(_("Take it down"), key=f"down_{entry.id}"):
                gallery.unpublish(classroom, entry.id, student=me)
                st.rerun()
        elif cols[2].button(_("Remix its data"), key=f"remix_{entry.id}",
                            help=_("Copy its images into your workspace as your dataset, to change and train again.")):
            try:
                with st.spinner(_("Copying the images...")):
                    name = gallery.remix(classroom, entry.id, me)
                st.success(_("Your dataset is now {name}. See it on 1. Data.").format(name=md(name)))
            except ClassError as error:
                show_error(str(error))

if classroom.leaderboard:
    st.markdown("#### " + _("Leaderboard"))
    board = st.session_state.setdefault("gallery_board", dashboard.Dashboard())
    for place, (nickname, accuracy, _run) in enumerate(dashboard.leaderboard(board.snapshot(classroom, job_manager())),
                                                       1):
        st.markdown(_("{place}\\. {nickname}: {share}").format(place=place, nickname=md(nickname), share=percent(accuracy)))
