"""TransferLab: teach a computer to recognise your own images. Run: streamlit run app.py"""
import sys

import streamlit as st

st.set_page_config(page_title="TransferLab", page_icon=":material/biotech:", layout="wide")
loading = st.empty()
if "torch" not in sys.modules:  # the first visit after a start imports torch and co. (seconds): not a blank page
    loading.info("Loading TransferLab: the first visit after the server starts takes a few seconds...",
                 icon=":material/hourglass_top:")
from core.i18n import _  # noqa: E402
from core.training.config import ConfigError  # noqa: E402 - the engine (torch): imported after the line above
from ui.classroom import navigation  # noqa: E402
from ui.common import show_error  # noqa: E402
from ui.language import language_picker, page_language  # noqa: E402

page_language()  # ?lang=, else this session's choice, else the browser's language, else English

# Without a class this is today's menu, with the teachers' Classroom page last; a class's student gets the pages
# their teacher allows and the class gallery; a "try it" link gets its page alone (ui/classroom.py).
page = navigation([
    st.Page("views/data.py", title=_("1. Data"), icon=":material/folder_open:", default=True),
    st.Page("views/label.py", title=_("Label"), icon=":material/label:"),
    st.Page("views/train.py", title=_("2. Train"), icon=":material/model_training:"),
    st.Page("views/evaluate.py", title=_("3. Evaluate"), icon=":material/analytics:"),
    st.Page("views/review.py", title=_("Review labels"), icon=":material/fact_check:"),
    st.Page("views/predict.py", title=_("4. Predict"), icon=":material/image_search:"),
    st.Page("views/export.py", title=_("5. Export"), icon=":material/download:"),
    st.Page("views/monitor.py", title=_("6. Monitor"), icon=":material/monitor_heart:"),
    st.Page("views/runs.py", title=_("Runs"), icon=":material/history:"),
])
language_picker()
try:
    page.run()
except ConfigError as error:  # a run the class's rules refuse, from any page that starts runs: a sentence
    show_error(_("This run was not started: {reason}").format(reason=error))
finally:
    loading.empty()
