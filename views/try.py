"""Try one published model on your own photos, on a phone or a laptop. The link opens this model and nothing else."""
import streamlit as st

from core.classroom import gallery
from core.i18n import _, listing
from core.text import md
from ui.classroom import link, qr_png, try_model

st.set_page_config(page_title=_("Try a model"), layout="centered")  # one column: phones come here from a QR code
found = gallery.by_token(st.query_params.get("model"))
if found is None:
    st.title(_("Try a model"))
    st.error(_("This link does not open a model: it may have been taken down, or the link is incomplete."))
    st.stop()
entry, run_path = found
st.title(md(entry.title))
st.caption(md(_("A model by {nickname}. It recognises: {names}").format(nickname=entry.nickname,
                                                                      names=listing(entry.labels, 12))))
try_model(run_path, key=f"try_{entry.id}")
with st.expander(_("Share this page")):
    st.image(qr_png(link("try", model=entry.token)), width=220)
