"""Step 4: try the model on new pictures, from files or the camera: its answer, whether to trust it, and why."""
import traceback

import streamlit as st
from PIL import Image

from core.data.preprocessing import ImageRejected, load_rgb
from core.insight import charts
from core.insight.explain import CAVEAT, explain, sanity_sentence
from core.text import md
from ui.common import pick_run, show_error, workspace
from ui.insight import predictor_for

UNKNOWN = "This does not look like any of your training images."
UNSURE = "Not sure: refer to a person."
SANITY_LIMIT = 0.5  # the similarity below which core.insight.explain.sanity_sentence trusts the heatmap


def headline(where, answer, best: dict) -> None:
    """The verdict a person acts on comes first: unknown or not sure is the answer; the class is only a guess."""
    if answer.unknown or answer.unsure:
        where.warning(UNKNOWN if answer.unknown else UNSURE, icon=":material/help:" if answer.unknown else
                      ":material/person_alert:")
        where.markdown(f"Best guess: {md(best['label'])}, {best['probability']:.0%}")
    else:
        where.markdown(f"**{md(best['label'])}** ({best['probability']:.0%} sure)")


def sanity_words(score: float) -> str:
    """The heatmap check in plain words; the measured number is in the tooltip."""
    if score < SANITY_LIMIT:
        return "Checked: this heatmap changes when the model's learned knowledge is scrambled, so it shows what " \
               "the model learned."
    return "Treat this heatmap with caution: it barely changes when the model's learned knowledge is scrambled, " \
           "so it may show the picture's outlines more than the model's reasons."


st.title("4. Predict")
run = pick_run(workspace(), "try it")
if run is None:
    st.stop()
try:
    model = predictor_for(run.path)
except Exception:  # a damaged or missing model file: say so, never show a bare traceback
    show_error("This model could not be loaded. Its files may be damaged; train it again.", traceback.format_exc())
    st.stop()
top_k = st.slider("How many guesses to show", 1, max(len(model.labels), 1), min(3, len(model.labels)))
uploads = st.file_uploader("Images", type=["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"],
                           accept_multiple_files=True)
photo = st.camera_input("Or take a photo") if st.toggle("Use the camera") else None
why = st.toggle("Show where the model looked (heatmap)", key="why")
if why:
    st.caption(CAVEAT)
inputs = [(f.name, f) for f in uploads or []] + ([("camera photo", photo)] if photo is not None else [])
for position, (name, file) in enumerate(inputs):
    try:
        image = load_rgb(file, min_size=model.preprocessing.resize_size)
    except ImageRejected as error:  # the sentence names the file by the name it was given
        show_error(f"{error}." if str(error).startswith("'") else f"'{name}': {error}.")
        continue
    answer = model.predict_details([image], top_k=top_k)[0]
    best = answer.top_k[0]
    left, right = st.columns([1, 2])
    preview = image.copy()
    preview.thumbnail((320, 320), Image.Resampling.BILINEAR)
    left.image(preview, caption=md(name))
    headline(right, answer, best)
    right.plotly_chart(charts.top_k(answer.top_k), key=f"topk_{position}")  # charts escapes names for Plotly
    if why:
        found = explain(model.model, model.preprocessing, model.tensor(image), sanity_check=True)
        left.image(found.image, caption=md(f"where it looked for '{model.labels[found.class_index]}'"))
        left.caption(sanity_words(found.sanity), help=sanity_sentence(found.sanity))
