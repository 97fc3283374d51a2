"""Test-only: app.py with the classroom wired in as the lead will wire it (until app.py and ui/common.py are).

Two lines differ from app.py: the job manager admits runs through the class rules (core.classroom.attach, which
belongs in ui/common.job_manager()), and the menu comes from ui.classroom.navigation (which adds the classroom
pages and hides what a class's teacher turned off). tests/test_classroom_browser.py runs a copy of this file
beside a link to views/ (pages are found relative to the main script), with the project root on PYTHONPATH.
"""
import streamlit as st

from core.classroom import attach
from ui.classroom import navigation
from ui.common import job_manager

st.set_page_config(page_title="TransferLab", page_icon=":material/biotech:", layout="wide")
attach(job_manager())
navigation([
    st.Page("views/data.py", title="1. Data", icon=":material/folder_open:", default=True),
    st.Page("views/label.py", title="Label", icon=":material/label:"),
    st.Page("views/train.py", title="2. Train", icon=":material/model_training:"),
    st.Page("views/evaluate.py", title="3. Evaluate", icon=":material/analytics:"),
    st.Page("views/review.py", title="Review labels", icon=":material/fact_check:"),
    st.Page("views/predict.py", title="4. Predict", icon=":material/image_search:"),
    st.Page("views/export.py", title="5. Export", icon=":material/download:"),
    st.Page("views/monitor.py", title="6. Monitor", icon=":material/monitor_heart:"),
    st.Page("views/runs.py", title="Runs", icon=":material/history:"),
]).run()
