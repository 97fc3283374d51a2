"""Step 3: how good is the model, how sure can we be of that, and where and why does it go wrong?"""
import traceback
from pathlib import Path

import streamlit as st

from core import tasks
from core.i18n import _, number, percent
from core.insight import trust_charts
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
    return _("When the model says it is 90% sure, is it right 90% of the time? Its confidence was off by {before} "
             "percentage points on average; after an adjustment learned on the validation images, by {after}. "
             "Predictions show the adjusted confidence.").format(before=number(before * 100, 1),
                                                                 after=number(after * 100, 1))


st.title(_("3. Evaluate"))
st.caption(_("Measured on the validation images: pictures the model did not learn from."))
run = pick_run(workspace(), "evaluate it")  # English: it names the select box's key
if run is None:
    st.stop()
report = run.run.evaluation()
if report is None:
    st.warning(" ".join(run.run.problems) or _("This run has no evaluation report."))
    st.stop()
if not report.num_images:
    st.warning(_("This run has no validation images, so it could not be evaluated."))
    st.stop()
task = tasks.get(report.task)
evaluation.headline(report, task)
for note in task.interval_notes(report)[:6]:
    st.info(md(note), icon=":material/straighten:")
if task.supports_cross_validation and st.checkbox(_("Cross-validate (k folds) for a steadier estimate"), key="cv"):
    cross_validation(run)
evaluation.per_label_table(report, task)
evaluation.figures(run.run, report, task)

calibration, abstention = report.trust.get("calibration"), report.trust.get("abstention")
if calibration:
    st.markdown(_("#### How sure is it, and is it right to be?"))
    st.caption(calibration_sentence(calibration))
    with st.expander(_("In technical terms")):
        st.caption(_("Expected calibration error (ECE): {before} before and {after} after temperature scaling "
                     "(temperature T = {temperature}); lower is better. Each point of the chart is a bin of "
                     "validation images; bins of fewer than {count} images are drawn hollow.").format(
            before=number(calibration["ece_before"], 3), after=number(calibration["ece_after"], 3),
            temperature=number(calibration["temperature"], 2), count=trust_charts.MIN_BIN_IMAGES))
    left, right = st.columns(2)
    left.plotly_chart(trust_charts.reliability(calibration["bins_before"], calibration["bins_after"]),
                      key="reliability")
    if abstention:
        right.plotly_chart(trust_charts.coverage(abstention["curve"], abstention), key="coverage")
        if abstention.get("accuracy") is not None:
            right.markdown(_("At this threshold ({threshold} sure) it answers **{answered}** of images and is right "
                             "on **{right}** of those. Below it, Predict says *Not sure: refer to a person*.").format(
                threshold=percent(abstention["threshold"]), answered=percent(abstention["coverage"]),
                right=percent(abstention["accuracy"])))
        else:
            right.warning(_("No threshold reaches {accuracy} accuracy on validation, so every answer is marked not "
                            "sure. More training images usually help.").format(
                accuracy=percent(abstention["target_accuracy"])))
elif report.trust.get("error"):
    show_error(_("Calibration could not be computed for this run."), report.trust["error"])

conformal_words = conformal.in_words(report.trust.get("conformal") or {})
if conformal_words:
    st.markdown(_("#### A range instead of one answer"))
    st.caption(conformal_words)

mistakes = report.mistakes()
st.markdown(_("#### {title} ({count})").format(title=_(task.mistakes_title), count=len(mistakes)))
if not mistakes:
    st.success(_("Every validation image was answered correctly."))
heatmaps = bool(mistakes) and st.toggle(_("Show where the model looked (heatmaps)"), key="heatmaps")
if heatmaps:
    st.caption(evaluation.heatmap_words(task))
evaluation.gallery(run.run, mistakes[:MISTAKES_SHOWN], heatmaps, task)
if len(mistakes) > MISTAKES_SHOWN:
    st.caption(_("The {shown} largest mistakes are shown, of {count}.").format(shown=MISTAKES_SHOWN,
                                                                               count=len(mistakes)))

st.markdown(_("#### Model card"))
st.caption(_("One HTML page with the data, settings, metrics with intervals, calibration, limits and example "
             "mistakes: to share, archive or attach to a report. It is also part of the export."))
if st.button(_("Write the model card"), key="model_card"):
    try:
        with st.spinner(_("Writing the model card...")):
            st.session_state[f"card_{run.id}"] = str(write_model_card(run.path))
    except Exception:  # never a bare traceback
        show_error(_("The model card could not be written."), traceback.format_exc())
card = st.session_state.get(f"card_{run.id}")
if card and Path(card).exists():
    st.download_button(_("Download the model card (HTML)"), Path(card).read_bytes(),
                       file_name=f"model-card-{run.id[:8]}.html", mime="text/html")
