"""TransferLab: teach a computer to recognise your own images. Run: streamlit run app.py"""
import streamlit as st

st.set_page_config(page_title="TransferLab", page_icon="🔬", layout="wide")
st.navigation([
    st.Page("pages/data.py", title="1. Data", icon="🗂️", default=True),
    st.Page("pages/train.py", title="2. Train", icon="🏋️"),
    st.Page("pages/evaluate.py", title="3. Evaluate", icon="📊"),
    st.Page("pages/predict.py", title="4. Predict", icon="🔮"),
    st.Page("pages/export.py", title="5. Export", icon="📦"),
    st.Page("pages/runs.py", title="Runs", icon="🗃️"),
]).run()
