"""Step 4: try the model on new pictures, from files or the camera."""
import traceback

import streamlit as st
from PIL import Image

from core.data.preprocessing import ImageRejected, load_rgb
from core.insight import charts
from core.serving.inference import Predictor
from ui.common import pick_run, show_error, workspace


@st.cache_resource(max_entries=4, show_spinner="Loading the model...")
def predictor(run_path: str, modified: float) -> Predictor:
    """Loaded once per run (and per model file version), then every prediction reuses it."""
    return Predictor(run_path)


st.title("4. Predict")
run = pick_run(workspace(), "try it")
if run is None:
    st.stop()
try:
    model = predictor(str(run.path), (run.path / "model.safetensors").stat().st_mtime)
except Exception:  # a damaged or missing model file: say so, never show a bare traceback
    show_error("This model could not be loaded. Its files may be damaged; train it again.", traceback.format_exc())
    st.stop()
top_k = st.slider("How many guesses to show", 1, max(len(model.labels), 1), min(3, len(model.labels)))
uploads = st.file_uploader("Images", type=["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"],
                           accept_multiple_files=True)
photo = st.camera_input("Or take a photo") if st.toggle("Use the camera") else None
inputs = [(f.name, f) for f in uploads or []] + ([("camera photo", photo)] if photo is not None else [])
for position, (name, file) in enumerate(inputs):
    try:
        image = load_rgb(file, min_size=model.preprocessing.resize_size)
    except ImageRejected as error:
        show_error(f"'{name}' could not be used: {error}.")
        continue
    prediction = model.predict([image], top_k=top_k)[0]
    left, right = st.columns([1, 2])
    preview = image.copy()
    preview.thumbnail((320, 320), Image.Resampling.BILINEAR)
    left.image(preview, caption=name)
    right.markdown(f"**{prediction[0]['label']}** ({prediction[0]['probability']:.0%} sure)")
    right.plotly_chart(charts.top_k(prediction), key=f"topk_{position}")
