"""Step 3: how good is the model, per class, and where does it go wrong?"""
from pathlib import Path

import streamlit as st

from core.insight import charts
from ui.common import cached_thumbnail, pick_run, workspace

MISTAKES_SHOWN = 24

st.title("3. Evaluate")
st.caption("Measured on the validation images: pictures the model did not learn from.")
run = pick_run(workspace(), "evaluate it")
if run is None:
    st.stop()
report = run.run.evaluation()
if report is None:
    st.warning(" ".join(run.run.problems) or "This run has no evaluation report.")
    st.stop()
if report["accuracy"] is None:
    st.warning("This run has no validation images, so it could not be evaluated.")
    st.stop()
top = st.columns(3)
top[0].metric("Accuracy", f"{report['accuracy']:.1%}", help="Share of validation images predicted correctly.")
top[1].metric("Macro F1", f"{report['macro_f1']:.3f}", help="Average over classes of the balance between "
              "precision and recall; low when any class does badly.")
top[2].metric("Validation images", report["num_images"])
st.markdown("#### Per class")
st.caption("Precision: when the model says this class, how often it is right. Recall: of the images of this "
           "class, how many it finds.")
st.dataframe([{"class": row["label"], "precision": round(row["precision"], 3), "recall": round(row["recall"], 3),
               "F1": round(row["f1"], 3), "images": row["support"]} for row in report["per_class"]],
             hide_index=True)
st.plotly_chart(charts.confusion(report["labels"], report["confusion"]), key="confusion")
mistakes = report["mistakes"]
st.markdown(f"#### Misclassified images ({len(mistakes)})")
if not mistakes:
    st.success("Every validation image was classified correctly.")
root = Path(report.get("data_root", ""))
columns = st.columns(6)
for i, mistake in enumerate(mistakes[:MISTAKES_SHOWN]):
    image = cached_thumbnail(str(root / mistake["path"]))
    caption = f"true: {mistake['true']} · predicted: {mistake['predicted']} ({mistake['confidence']:.0%})"
    with columns[i % 6]:
        if image is not None:
            st.image(image, caption=caption)
        else:
            st.caption(f"{mistake['path']}: {caption} (image no longer available)")
if len(mistakes) > MISTAKES_SHOWN:
    st.caption(f"The {MISTAKES_SHOWN} most confident mistakes are shown, of {len(mistakes)}.")
