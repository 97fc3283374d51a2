"""Step 3: how good is the model, how sure can we be of that, and where and why does it go wrong?"""
import traceback
from pathlib import Path

import streamlit as st

from core import tasks
from core.insight import trust_charts
from core.insight.explain import CAVEAT
from core.serving.model_card import write_model_card
from core.stats import conformal
from core.text import md
from ui import evaluation
from ui.common import pick_run, show_error, workspace
from ui.insight import cross_validation

MISTAKES_SHOWN = 24


def calibration_sentence(calibration: dict) -> str:
    """What calibration means for this model, without its terms (they are one click away)."""
    before, after = calibration["ece_before"], calibration["ece_after"]
    return (f"When the model says it is 90% sure, is it right 90% of the time? Its confidence was off by "
            f"{before * 100:.1f} percentage points on average; after an adjustment learned on the validation "
            f"images, by {after * 100:.1f}. Predictions show the adjusted confidence.")


st.title("3. Evaluate")
st.caption("Measured on the validation images: pictures the model did not learn from.")
run = pick_run(workspace(), "evaluate it")
if run is None:
    st.stop()
report = run.run.evaluation()
if report is None:
    st.warning(" ".join(run.run.problems) or "This run has no evaluation report.")
    st.stop()
if not report.num_images:
    st.warning("This run has no validation images, so it could not be evaluated.")
    st.stop()
task = tasks.get(report.task)
evaluation.headline(report, task)
for note in report.interval_notes[:6]:
    st.info(md(note), icon=":material/straighten:")
if task.supports_cross_validation and st.checkbox("Cross-validate (k folds) for a steadier estimate", key="cv"):
    cross_validation(run)
evaluation.per_label_table(report, task)
evaluation.figures(run.run, report, task)

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

conformal_words = conformal.in_words(report.trust.get("conformal") or {})
if conformal_words:
    st.markdown("#### A range instead of one answer")
    st.caption(conformal_words)

mistakes = report.mistakes()
st.markdown(f"#### {task.mistakes_title} ({len(mistakes)})")
if not mistakes:
    st.success("Every validation image was answered correctly.")
heatmaps = bool(mistakes) and st.toggle("Show where the model looked (heatmaps)", key="heatmaps")
if heatmaps:
    st.caption(" ".join(filter(None, (CAVEAT, task.heatmap_note))))
evaluation.gallery(run.run, mistakes[:MISTAKES_SHOWN], heatmaps, task)
if len(mistakes) > MISTAKES_SHOWN:
    st.caption(f"The {MISTAKES_SHOWN} largest mistakes are shown, of {len(mistakes)}.")

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
