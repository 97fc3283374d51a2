"""Step 4: try the model on new pictures, from files or the camera: its answer, whether to trust it, and why."""
import traceback

import streamlit as st
from PIL import Image

from core.data.preprocessing import ImageRejected, load_rgb
from core.i18n import _, quoted
from core.insight import charts
from core.insight.explain import CAVEAT, explain, sanity_sentence
from core.text import md
from ui import zero_shot as zero_shot_panel
from ui.common import pick_run, refusal, show_error, workspace
from ui.insight import predictor_for

UNKNOWN = _("This does not look like any of your training images.")  # a page runs anew: in this run's language
UNSURE = _("Not sure: refer to a person.")
SANITY_LIMIT = 0.5  # the similarity below which core.insight.explain.sanity_sentence trusts the heatmap


def headline(where, task, answer) -> None:
    """The verdict a person acts on comes first: unknown or not sure is the answer; the model's is only a guess."""
    guess = answer.unknown or answer.unsure
    said = md(task.verdict(answer.to_json(), guess))
    if guess:
        where.warning(UNKNOWN if answer.unknown else UNSURE, icon=":material/help:" if answer.unknown else
                      ":material/person_alert:")
        where.markdown(_("Best guess: {answer}").format(answer=said))
    else:
        where.markdown(f"**{said}**")


def sanity_words(score: float) -> str:
    """The heatmap check in plain words; the measured number is in the tooltip."""
    if score < SANITY_LIMIT:
        return _("Checked: this heatmap changes when the model's learned knowledge is scrambled, so it shows what "
                 "the model learned.")
    return _("Treat this heatmap with caution: it barely changes when the model's learned knowledge is scrambled, "
             "so it may show the picture's outlines more than the model's reasons.")


st.title(_("4. Predict"))
ws = workspace()
with st.expander(_("No model yet? Try one made from class names alone (zero-shot)")):
    choice = zero_shot_panel.settings("predict")
    if choice:
        zero_shot_panel.try_button(choice, ws)
run = pick_run(ws, "try it")
if run is None:
    st.stop()
try:
    model = predictor_for(run.path)
except Exception:  # a damaged or missing model file: say so, never show a bare traceback
    show_error(_("This model could not be loaded. Its files may be damaged; train it again."), traceback.format_exc())
    st.stop()
top_k = 3
if model.task.top_k_choice and len(model.labels) > 1:
    top_k = st.slider(_("How many guesses to show"), 1, len(model.labels), min(3, len(model.labels)))
uploads = st.file_uploader(_("Images"), type=["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"],
                           accept_multiple_files=True)
photo = st.camera_input(_("Or take a photo")) if st.toggle(_("Use the camera")) else None
why = st.toggle(_("Show where the model looked (heatmap)"), key="why")
if why:
    st.caption(_(CAVEAT))
inputs = [(f.name, f) for f in uploads or []] + ([(_("camera photo"), photo)] if photo is not None else [])
for position, (name, file) in enumerate(inputs):
    try:
        image = load_rgb(file, min_size=model.preprocessing.resize_size)
    except ImageRejected as error:  # the sentence names the file by the name it was given
        show_error(refusal(name, error))
        continue
    answer = model.predict_details([image], top_k=top_k)[0]
    left, right = st.columns([1, 2])
    preview = image.copy()
    preview.thumbnail((320, 320), Image.Resampling.BILINEAR)
    left.image(preview, caption=md(name))
    headline(right, model.task, answer)
    if answer.top_k:
        right.plotly_chart(charts.top_k(answer.top_k), key=f"topk_{position}")  # charts escapes names for Plotly
    if why:
        found = explain(model.model, model.preprocessing, model.tensor(image), sanity_check=True)
        looked_for = quoted(model.labels[found.class_index]) if found.class_index < len(model.labels) else \
            _("its number")
        left.image(found.image, caption=md(_("where it looked for {name}").format(name=looked_for)))
        left.caption(sanity_words(found.sanity), help=sanity_sentence(found.sanity))
