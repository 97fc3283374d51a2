"""Step 3: how good is the model, how sure can we be of that, and where and why does it go wrong?"""
import traceback
from pathlib import Path

import streamlit as st

from core.insight import trust_charts
from core.insight.explain import CAVEAT
from core.serving.model_card import write_model_card
from core.text import md, plain
from ui.common import cached_thumbnail, pick_run, show_error, workspace
from ui.insight import cross_validation, heatmap_overlay

MISTAKES_SHOWN = 24
CELL_IMAGES_SHOWN = 30


def interval_text(pair: list[float] | None) -> str:
    return f"95% interval: {pair[0]:.0%} to {pair[1]:.0%}" if pair else ""


def calibration_sentence(calibration: dict) -> str:
    """What calibration means for this model, without its terms (they are one click away)."""
    before, after = calibration["ece_before"], calibration["ece_after"]
    return (f"When the model says it is 90% sure, is it right 90% of the time? Its confidence was off by "
            f"{before * 100:.1f} percentage points on average; after an adjustment learned on the validation "
            f"images, by {after * 100:.1f}. Predictions show the adjusted confidence.")


def gallery(run, items: list[dict], heatmaps: bool) -> None:
    """The validation images of `items` as the model saw them (the run folder keeps them)."""
    columns = st.columns(6)
    for i, item in enumerate(items):
        caption = md(f"true: {item['true']} · predicted: {item['predicted']} ({item['confidence']:.0%})")
        digest = item.get("sha256", "")
        image = heatmap_overlay(str(run.path), digest, item["predicted"]) if heatmaps else None
        stored = run.val_image(digest)
        image = image if image is not None else cached_thumbnail(str(stored)) if stored else None
        with columns[i % 6]:
            if image is not None:
                st.image(image, caption=caption)
            else:
                st.caption(md(f"{item['path']}: ") + caption + " (image no longer available)")


st.title("3. Evaluate")
st.caption("Measured on the validation images: pictures the model did not learn from.")
run = pick_run(workspace(), "evaluate it")
if run is None:
    st.stop()
report = run.run.evaluation()
if report is None:
    st.warning(" ".join(run.run.problems) or "This run has no evaluation report.")
    st.stop()
if report.accuracy is None:
    st.warning("This run has no validation images, so it could not be evaluated.")
    st.stop()
intervals = report.intervals
top = st.columns(3)
top[0].metric("Accuracy", f"{report.accuracy:.1%}", help="Share of validation images predicted correctly.")
top[0].caption(interval_text(intervals.get("accuracy")))
top[1].metric("Class-balanced score", f"{report.macro_f1:.1%}",
              help="Macro F1: the average over classes of each class's F1 (the balance between precision and "
              "recall). Low when any one class does badly, even a small one.")
top[1].caption(interval_text(intervals.get("macro_f1")))
top[2].metric("Validation images", report.num_images)
for note in report.interval_notes[:6]:
    st.info(md(note), icon=":material/straighten:")
if st.checkbox("Cross-validate (k folds) for a steadier estimate", key="cv"):
    cross_validation(run)

st.markdown("#### Per class")
st.caption("Precision: when the model says this class, how often it is right. Recall: of the images of this "
           "class, how many it finds. The interval is where the recall could really be, given so few images.")
PERCENT = st.column_config.NumberColumn(format="percent")
st.dataframe([{"class": row["label"], "precision": row["precision"], "recall": row["recall"],
               "recall 95% interval": interval_text(row.get("recall_interval")).removeprefix("95% interval: "),
               "F1": row["f1"], "images": row["support"]} for row in report.per_label],
             hide_index=True, column_config={"precision": PERCENT, "recall": PERCENT, "F1": PERCENT})
if report.per_label and "recall_interval" in report.per_label[0]:
    st.plotly_chart(trust_charts.recall_intervals(report.per_label), key="recall_intervals")

labels = report.labels
event = st.plotly_chart(trust_charts.confusion(labels, report.confusion), key="confusion", on_select="rerun",
                        selection_mode="points")
cells = [(t, p) for i, t in enumerate(labels) for j, p in enumerate(labels) if report.confusion[i][j]]
clicked = trust_charts.selected_cell(labels, event)
if clicked != st.session_state.get("cell_clicked"):  # a new click; otherwise the dropdown below decides
    st.session_state["cell_clicked"] = clicked
    if clicked in cells:
        st.session_state["cell"] = cells.index(clicked)
    elif clicked is not None:
        st.session_state["cell"] = None
        st.caption(md(f"No validation image is true {clicked[0]} and predicted {clicked[1]}."))
chosen_cell = st.selectbox("Show the images of one cell", [None, *range(len(cells))], key="cell",
                           format_func=lambda c: "choose a cell" if c is None else
                           plain(f"true {cells[c][0]}, predicted {cells[c][1]}"))
if chosen_cell is not None:
    cell = cells[chosen_cell]
    chosen = [p for p in report.predictions if (p["true"], p["predicted"]) == cell]
    st.caption(md(f"{len(chosen)} image(s): true {cell[0]}, predicted {cell[1]}"))
    gallery(run.run, chosen[:CELL_IMAGES_SHOWN], False)

calibration, abstention = report.trust.get("calibration"), report.trust.get("abstention")
if calibration:
    st.markdown("#### How sure is it, and is it right to be?")
    st.caption(calibration_sentence(calibration))
    with st.expander("In technical terms"):
        st.caption(f"Expected calibration error (ECE): {calibration['ece_before']:.3f} before and "
                   f"{calibration['ece_after']:.3f} after temperature scaling (temperature T = "
                   f"{calibration['temperature']:.2f}); lower is better. Each point of the chart is a bin of "
                   f"validation images; bins of fewer than {trust_charts.MIN_BIN_IMAGES} images are drawn hollow.")
    left, right = st.columns(2)
    left.plotly_chart(trust_charts.reliability(calibration["bins_before"], calibration["bins_after"]),
                      key="reliability")
    if abstention:
        right.plotly_chart(trust_charts.coverage(abstention["curve"], abstention), key="coverage")
        if abstention.get("accuracy") is not None:
            right.markdown(f"At this threshold ({abstention['threshold']:.0%} sure) it answers "
                           f"**{abstention['coverage']:.0%}** of images and is right on "
                           f"**{abstention['accuracy']:.0%}** of those. Below it, Predict says *Not sure: refer to "
                           "a person*.")
        else:
            right.warning(f"No threshold reaches {abstention['target_accuracy']:.0%} accuracy on validation, so "
                          "every answer is marked not sure. More training images usually help.")
elif report.trust.get("error"):
    show_error("Calibration could not be computed for this run.", report.trust["error"])

mistakes = report.mistakes()
st.markdown(f"#### Misclassified images ({len(mistakes)})")
if not mistakes:
    st.success("Every validation image was classified correctly.")
heatmaps = bool(mistakes) and st.toggle("Show where the model looked (heatmaps)", key="heatmaps")
if heatmaps:
    st.caption(CAVEAT)
gallery(run.run, mistakes[:MISTAKES_SHOWN], heatmaps)
if len(mistakes) > MISTAKES_SHOWN:
    st.caption(f"The {MISTAKES_SHOWN} most confident mistakes are shown, of {len(mistakes)}.")

st.markdown("#### Model card")
st.caption("One HTML page with the data, settings, metrics with intervals, calibration, limits and example "
           "mistakes: to share, archive or attach to a report. It is also part of the export.")
if st.button("Write the model card", key="model_card"):
    try:
        with st.spinner("Writing the model card..."):
            st.session_state[f"card_{run.id}"] = str(write_model_card(run.path))
    except Exception:  # never a bare traceback
        show_error("The model card could not be written.", traceback.format_exc())
card = st.session_state.get(f"card_{run.id}")
if card and Path(card).exists():
    st.download_button("Download the model card (HTML)", Path(card).read_bytes(),
                       file_name=f"model-card-{run.id[:8]}.html", mime="text/html")
