"""What the classroom pages share: the class in the URL (teacher key) or the workspace (a student's), links and
QR codes to put on the board, the menu a class's students see, the projector view of a run, the "try it" box.

Pages call one function here and draw its result; everything a class may or may not do is decided in
core.classroom, which also enforces it where runs are admitted.
"""
from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import streamlit as st
from PIL import Image

from core.classroom import keys, roster
from core.classroom.roster import Classroom, Student
from core.data.preprocessing import ImageRejected, load_rgb
from core.i18n import N_, _, percent
from core.insight import charts, trust_charts
from core.runs.folder import Run
from core.text import md
from ui.common import refusal, remember, show_error, url_param
from ui.insight import predictor_for

PUBLIC_URL_ENV = "TRANSFERLAB_PUBLIC_URL"  # e.g. https://lab.school.example, when the server sits behind a proxy
IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"]
COOKIE_DAYS = 180
UNKNOWN = N_("This does not look like any of the images it learnt from.")
UNSURE = N_("Not sure: it would ask a person.")


# --- who is asking ---

def teacher_class() -> tuple[Classroom | None, bool]:
    """(the class whose teacher key is in the URL or session, whether a key was given at all)."""
    key = url_param("teacher")
    class_id = keys.class_of_teacher_key(key)
    return (roster.load(class_id) if class_id else None), bool(key)


def student() -> tuple[Classroom, Student] | None:
    """The class and student of this browser's workspace key, without making a workspace for a mere visitor."""
    return roster.member_of(url_param("ws"))


def session_id() -> str:
    """A random id of this browser session (the join guard counts wrong codes by it)."""
    return st.session_state.setdefault("classroom_session", secrets.token_hex(8))


# --- links, QR codes, the rejoin cookie ---

def base_url() -> str:
    """The server's address as this browser reached it (or TRANSFERLAB_PUBLIC_URL), without a trailing slash."""
    configured = os.environ.get(PUBLIC_URL_ENV, "").strip().rstrip("/")
    if configured:
        return configured
    parts = urlsplit(st.context.url or "http://localhost:8501")
    prefix = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"{parts.scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else "")


def link(page: str, **params: str) -> str:
    return f"{base_url()}/{page}" + (f"?{urlencode(params)}" if params else "")


@st.cache_data(max_entries=256, show_spinner=False)
def qr_png(text: str) -> bytes:
    """A QR code a phone reads from the back of a classroom (scale 10, medium error correction)."""
    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=10, border=2)
    return buffer.getvalue()


def cookie_name(class_id: str) -> str:
    return f"transferlab_class_{class_id}"


def remember_in_browser(class_id: str, workspace_key: str) -> None:
    """Keep the student's workspace key for this class in a cookie: the board's link finds them again later.
    Both values are hex strings the server made (never user text), so they can go into the script as they are."""
    assert class_id.isalnum() and workspace_key.isalnum()
    st.html(f"<script>document.cookie = '{cookie_name(class_id)}={workspace_key}; path=/; "
            f"max-age={COOKIE_DAYS * 86400}; SameSite=Lax';</script>", unsafe_allow_javascript=True)


def browser_key(class_id: str) -> str | None:
    return st.context.cookies.get(cookie_name(class_id))


def enter_workspace(key: str) -> None:
    """Make this browser's workspace the student's (the URL and the session keep it, as for any workspace)."""
    remember("ws", key)
    st.query_params.pop("code", None)


# --- the menu ---

_OWN = {"classroom": ("views/classroom.py", N_("Classroom (teachers)"), ":material/school:"),
        "gallery": ("views/gallery.py", N_("Class gallery"), ":material/collections:"),
        "join": ("views/join.py", N_("Join a class"), ":material/group_add:"),
        "try": ("views/try.py", N_("Try a model"), ":material/photo_camera:")}


def _page(name: str, visible: bool = True) -> st.Page:
    path, title, icon = _OWN[name]
    return st.Page(path, title=_(title), icon=icon, url_path=name, visibility="visible" if visible else "hidden")


def navigation(pages: list) -> object:
    """app.py's menu: a "try it" link opened outside the class gets its page alone (no menu); a class's student
    gets the pages their teacher allows and the gallery (a hidden page is not registered at all, so its address
    opens nothing); everyone else gets today's pages and, last, the teachers' Classroom page."""
    member = student()
    if st.query_params.get("model") and member is None:
        return st.navigation([_page("try")], position="hidden")
    if member is None:
        return st.navigation([*pages, _page("classroom"), _page("join", False), _page("gallery", False),
                              _page("try", False)])
    rules = member[0].rules
    allowed = [p for p in pages if rules.page_allowed(p.url_path)]
    return st.navigation([*allowed, _page("gallery"), _page("join", False), _page("try", False),
                          _page("classroom", False)])


def guard_page(name: str) -> None:
    """For a page a teacher may hide (review, monitor, export, label, runs): stop it for a student of such a class,
    however it was reached."""
    member = student()
    if member is not None and not member[0].rules.page_allowed(name):
        st.info(_("Your teacher has turned this page off for the class."))
        st.stop()


# --- a run on the projector, and the "try it" box ---

def show_run(run_path: Path, key: str) -> None:
    """A student's run, read-only: how it learnt, how good it is, and a box to try it on a photo."""
    run = Run(run_path)
    status = run.status()
    metrics = run.metrics()
    if metrics:
        st.plotly_chart(charts.training_curves(metrics), key=f"{key}_curves")
    evaluation = run.evaluation() if status.get("state") == "finished" else None
    if evaluation is None or evaluation.accuracy is None:
        st.info(md(status.get("message") or _("This run has no evaluation yet.")))
        return
    top = st.columns(3)
    top[0].metric(_("Accuracy"), percent(evaluation.accuracy))
    top[1].metric(_("Validation images"), evaluation.num_images)
    top[2].metric(_("Classes"), len(evaluation.labels))
    st.plotly_chart(trust_charts.confusion(evaluation.labels, evaluation.confusion), key=f"{key}_confusion")
    try_model(run_path, key)


def try_model(run_path: Path, key: str) -> None:
    """Photos in, answers out. On a phone the file picker offers the (back) camera; the page stays one column."""
    try:
        model = predictor_for(run_path)
    except Exception:  # noqa: BLE001 - a damaged model file: a sentence, never a traceback
        show_error(_("This model could not be loaded; its files may be damaged."))
        return
    files = st.file_uploader(_("Take a photo or choose one"), type=IMAGE_TYPES, accept_multiple_files=True,
                             key=f"{key}_photos", help=_("On a phone this offers the camera."))
    shot = st.camera_input(_("Or use this device's camera"), key=f"{key}_camera") if st.toggle(
        _("Use the camera here"), key=f"{key}_use_camera") else None
    taken = [(_("camera"), shot)] if shot else []
    for position, (name, data) in enumerate([(f.name, f) for f in files or []] + taken):
        try:
            image = load_rgb(data, min_size=model.preprocessing.resize_size)
        except ImageRejected as error:
            show_error(refusal(name, error))
            continue
        _answer(model, image, name, f"{key}_{position}")


def _answer(model, image: Image.Image, name: str, key: str) -> None:
    answer = model.predict_details([image], top_k=min(3, max(len(model.labels), 1)))[0]
    preview = image.copy()
    preview.thumbnail((320, 320), Image.Resampling.BILINEAR)
    st.image(preview, caption=md(name))
    best = answer.top_k[0]
    if "label" in best and "probability" in best:
        st.markdown(f"### {md(best['label'])}")
        st.caption(_("{share} sure").format(share=percent(best["probability"])))
        for guess in answer.top_k:
            st.progress(float(guess["probability"]), text=md(_("{name}: {share}").format(
                name=guess["label"], share=percent(guess["probability"]))))
    else:
        st.plotly_chart(charts.top_k(answer.top_k), key=key)
    if answer.unknown:
        st.warning(_(UNKNOWN), icon=":material/help:")
    elif answer.unsure:
        st.warning(_(UNSURE), icon=":material/person_alert:")
