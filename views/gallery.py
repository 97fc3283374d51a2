"""The class gallery: publish a model you trained, try your classmates' models, remix their data."""
import streamlit as st

from core.classroom import control, dashboard, gallery
from core.classroom.roster import ClassError
from core.text import md, plain
from ui.classroom import link, qr_png, student
from ui.common import describe_run, job_manager, show_error

control.attach(job_manager())
st.title("Class gallery")
member = student()
if member is None:
    st.info("The gallery belongs to a class. Join one with your teacher's code or QR code.")
    st.page_link("views/join.py", label="Join a class", icon=":material/group_add:")
    st.stop()
classroom, me = member

finished = me.workspace.finished_runs()
with st.expander("Publish one of my models", expanded=not gallery.entries(classroom)):
    if not finished:
        st.caption("Train a model first (2. Train); then it can go here.")
    else:
        run = st.selectbox("Model", finished, format_func=lambda r: plain(describe_run(r)), key="publish_run")
        title = st.text_input("Title", max_chars=gallery.MAX_TITLE, placeholder="What does it recognise?")
        st.caption("Your classmates will see your nickname, this model and its classes, and may copy its images.")
        if st.button("Publish to the class", type="primary", key="publish"):
            try:
                gallery.publish(classroom, me, run.id, title)
                st.rerun()
            except ClassError as error:
                show_error(str(error))

entries = gallery.entries(classroom)
if not entries:
    st.info("Nobody has published a model yet.")
for entry in entries:
    with st.container(border=True):
        score = f" · {entry.accuracy:.0%} on its validation images" if entry.accuracy is not None else ""
        st.markdown(f"**{md(entry.title)}** by {md(entry.nickname)}{score}")
        st.caption(md("Recognises: " + ", ".join(entry.labels[:12]) + ("..." if len(entry.labels) > 12 else "")))
        cols = st.columns(3)
        cols[0].page_link("views/try.py", label="Try it", icon=":material/photo_camera:",
                          query_params={"model": entry.token})
        with cols[1].popover("Try it on a phone"):
            st.image(qr_png(link("try", model=entry.token)), width=220)
            st.caption("The link opens this model only.")
        if entry.student_id == me.id:
            if cols[2].button("Take it down", key=f"down_{entry.id}"):
                gallery.unpublish(classroom, entry.id, student=me)
                st.rerun()
        elif cols[2].button("Remix its data", key=f"remix_{entry.id}",
                            help="Copy its images into your workspace as your dataset, to change and train again."):
            try:
                with st.spinner("Copying the images..."):
                    name = gallery.remix(classroom, entry.id, me)
                st.success(f"Your dataset is now {md(name)}. See it on 1. Data.")
            except ClassError as error:
                show_error(str(error))

if classroom.leaderboard:
    st.markdown("#### Leaderboard")
    board = st.session_state.setdefault("gallery_board", dashboard.Dashboard())
    for place, (nickname, accuracy, _) in enumerate(dashboard.leaderboard(board.snapshot(classroom, job_manager())), 1):
        st.markdown(f"{place}\\. {md(nickname)}: {accuracy:.0%}")
