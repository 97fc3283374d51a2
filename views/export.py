"""Step 5: take the model away: one zip with everything needed to use it in code."""
import traceback

import streamlit as st

from core.i18n import _
from core.serving.export import export_bundle
from core.text import md
from ui.common import pick_run, show_error, workspace

st.title(_("5. Export"))
st.markdown(_("One download: the model as **TorchScript** (and ONNX when available), `labels.json`, "
              "`preprocessing.json` and a standalone `predict.py` that needs only torch, torchvision and Pillow."))
run = pick_run(workspace(), "export it")
if run is None:
    st.stop()
state_key = f"export_{run.id}"
if st.button(_("Prepare the download"), type="primary"):
    try:
        with st.spinner(_("Exporting and checking the exported model against the trained one...")):
            st.session_state[state_key] = export_bundle(run.path)
    except Exception:  # a page must always say what happened, never show a bare traceback
        show_error(_("The export did not work for this model."), traceback.format_exc())
result = st.session_state.get(state_key)
if result is not None:
    (st.success if result.verified else st.warning)(md(result.note))
    st.download_button(_("Download the model (zip)"), result.path.read_bytes(),
                       file_name=f"transferlab-{run.config.get('backbone')}-{run.id[:8]}.zip",
                       mime="application/zip", type="primary")
    st.code("unzip transferlab-*.zip -d my_model && python my_model/predict.py photo.jpg", language="bash")
