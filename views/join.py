"""A student joins a class: the code from the board (or the link / QR code, which carries it), then a nickname.
No e-mail, no real name, no password: the workspace key in the link is the student's key, as for any workspace."""
import streamlit as st

from core.classroom import joining, keys
from core.classroom.keys import TooManyGuesses
from core.classroom.roster import ClassError
from core.i18n import _
from core.text import md
from ui.classroom import browser_key, enter_workspace, remember_in_browser, session_id, student
from ui.common import show_error

st.title(_("Join a class"))
code = st.query_params.get("code") or st.session_state.get("join_code")
if not code:
    with st.form("code_form"):
        typed = st.text_input(_("Class code (it is on the board)"), max_chars=12, placeholder="KXD-MPR")
        if st.form_submit_button(_("Next"), type="primary"):
            code = typed
if not code:
    st.caption(_("Your teacher shows a code, a link or a QR code. With the link or the QR code you skip this step."))
    st.stop()
try:
    classroom = joining.find_class(code, session_id())
except (TooManyGuesses, ClassError) as error:
    st.session_state.pop("join_code", None)
    st.query_params.pop("code", None)
    show_error(str(error))
    st.stop()
st.session_state["join_code"] = classroom.code
st.subheader(_("Class: {name}").format(name=md(classroom.name)))

joined = st.session_state.get("joined")
if joined and joined[0] == classroom.id:
    remember_in_browser(classroom.id, joined[1])  # drawn on the page after the rerun: sets the rejoin cookie
    st.success(_("Welcome, {nickname}! This is your own workspace in the class.").format(nickname=md(joined[2])))
    st.page_link("views/data.py", label=_("Start with 1. Data"), icon=":material/arrow_forward:")
    st.caption(_("Keep this tab open, or bookmark it: its address brings you back to your work."))
    st.stop()

here = student()
for key in dict.fromkeys(k for k in (here[1].workspace_key if here else None, browser_key(classroom.id)) if k):
    back = joining.returning(classroom, key)
    if back is not None:
        st.info(_("Welcome back, {nickname}.").format(nickname=md(back.nickname)))
        if st.button(_("Continue as {nickname}").format(nickname=md(back.nickname)), type="primary",
                     key=f"back_{back.id}"):
            enter_workspace(back.workspace_key)
            st.switch_page("views/data.py")
        st.caption(_("Not you? Join below with your own nickname."))
        break

with st.form("nickname_form"):
    nickname = st.text_input(_("Your nickname"), max_chars=24, help=_("Any name your classmates may see."))
    st.caption(_("Use a nickname, not your real name. Nothing else is asked: no e-mail, no password."))
    if st.form_submit_button(_("Join the class"), type="primary"):
        try:
            new = joining.join(classroom, nickname)
        except ClassError as error:
            show_error(str(error))
        else:
            enter_workspace(new.workspace_key)
            st.session_state["joined"] = (classroom.id, new.workspace_key, new.nickname)
            st.rerun()
st.caption(_("Code {code}").format(code=keys.shown_code(classroom.code)))
