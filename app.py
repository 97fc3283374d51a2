"""TransferLab: teach a computer to recognise your own images. Run: streamlit run app.py"""
import sys

import streamlit as st

st.set_page_config(page_title="TransferLab", page_icon=":material/biotech:", layout="wide")
page = st.navigation([
    st.Page("views/data.py", title="1. Data", icon=":material/folder_open:", default=True),
    st.Page("views/label.py", title="Label", icon=":material/label:"),
    st.Page("views/train.py", title="2. Train", icon=":material/model_training:"),
    st.Page("views/evaluate.py", title="3. Evaluate", icon=":material/analytics:"),
    st.Page("views/review.py", title="Review labels", icon=":material/fact_check:"),
    st.Page("views/predict.py", title="4. Predict", icon=":material/image_search:"),
    st.Page("views/export.py", title="5. Export", icon=":material/download:"),
    st.Page("views/monitor.py", title="6. Monitor", icon=":material/monitor_heart:"),
    st.Page("views/runs.py", title="Runs", icon=":material/history:"),
])
loading = st.empty()
if "torch" not in sys.modules:  # the first visit after a start imports torch and co. (seconds): not a blank page
    loading.info("Loading TransferLab: the first visit after the server starts takes a few seconds...",
                 icon=":material/hourglass_top:")
try:
    page.run()
finally:
    loading.empty()
