"""Step 6: serve a model to other programs and watch what it is asked and how it answers."""
import time

import streamlit as st

from core import paths
from core.data.archive import ArchiveRefused
from core.data.store import DatasetStore, StoreError
from core.i18n import N_, _, ngettext, number, percent
from core.serving import monitor, monitor_charts
from core.serving.keep import kept_images_for_review
from core.serving.log_access import REFUSED, is_sqlite_url, open_typed_log
from core.serving.predlog import LogUnavailable, PredictionLog, default_url
from core.serving.process import ServiceStartError, default_keep_dir, how_to_call
from core.serving.registry import registry
from core.serving.to_labelling import labelling_dataset, labels_to_feedback, send_for_labelling
from core.text import md
from ui.common import cached_thumbnail, pick_run, show_error, workspace

# The options are the English sentences (the widgets' values, as tests set them); each is shown translated.
PERIODS = {N_("Last hour"): 3600, N_("Last day"): 86400, N_("Last week"): 7 * 86400, N_("Everything"): None}
FROM_RUN, FROM_URL = N_("A trained model of this workspace"), N_("A prediction log database (URL)")


def service_panel(run) -> str:
    """Start/stop a local service for the run; returns the URL to show in the examples."""
    service = registry.get(run.path)
    st.caption(registry.usage(space.root).sentence())
    if service is None:
        keep = st.checkbox(_("Keep the images it receives (the newest {count}, for review)").format(count=1000),
                           key="monitor_keep")
        if st.button(_("Start a local service"), type="primary", key="monitor_start"):
            try:
                with st.spinner(_("Loading the model in a new service...")):
                    registry.start(run.path, space.root,
                                   keep_images=default_keep_dir(space.root, run.id) if keep else None)
                st.rerun()  # draw the running state alone (no Start button left over from this run)
            except ServiceStartError as error:
                show_error(str(error), error.output or None)  # the output has its paths and keys hidden
    if service is not None:
        st.success(_("Serving at {url} (reachable from this computer only). API docs: {docs}").format(
            url=service.url, docs=f"{service.url}/docs"))
        if st.button(_("Stop the service"), key="monitor_stop"):
            registry.stop(run.path)
            st.rerun()
        return service.url
    return "http://127.0.0.1:8000"


def how_to_call_panel(run, url: str) -> None:
    examples = how_to_call(run.id, url, run.config.get("task", "single"))
    if registry.get(run.path) is None:  # while it serves, starting another on the same port would only fail
        how_to_start(examples)
    st.markdown(_("**Ask it** from a terminal, or from Python:"))
    st.code(examples["curl"], language="bash")
    st.code(examples["python"], language="python")


def how_to_start(examples: dict[str, str]) -> None:
    st.markdown(_("**Start it yourself** (add `--host 0.0.0.0 --api-key-env MY_KEY` to reach it from other "
                  "machines):"))
    st.code(examples["serve"], language="bash")
    st.caption(examples["key"])


def open_log(source: str, run) -> tuple[PredictionLog, str | None] | None:
    if source == FROM_RUN:
        return PredictionLog(default_url(space.root, run.id), create=False), run.id
    url = st.text_input(_("Database URL"), key="monitor_url",
                        placeholder=_("sqlite:///serving/RUN_ID.sqlite or postgresql://user@host/db"))
    if not url:
        st.info(_("Enter the URL of a prediction log (the `--log-db` of a service, or sqlite:///serving/RUN_ID.sqlite "
                  "for a log of this workspace)."))
        return None
    try:
        return open_typed_log(url, space.root), None
    except LogUnavailable as error:
        st.error(md(str(error)))
        return None


def show_summary(summary: monitor.Summary, reference: monitor.Reference) -> None:
    latency, trust = summary.latency, summary.trust
    traffic = st.columns(3)  # three a row: five metrics in one row are cut off with an ellipsis next to the sidebar
    traffic[0].metric(_("Images answered"), summary.images)
    traffic[1].metric(_("Latency p50 / p95"), _("{median} / {slow} ms").format(median=number(latency["p50"]),
                                                                            slow=number(latency["p95"])))
    traffic[2].metric(_("Unknown"), percent(trust["unknown"]), help=_("Images unlike every training image."))
    st.plotly_chart(monitor_charts.requests_over_time(summary.over_time), key="monitor_time")
    if len(summary.replicas) > 1 or any(r["replica"] != "not recorded" for r in summary.replicas):
        st.markdown(_("**Answered by** (each replica of the service, host:process)"))
        st.dataframe(replica_rows(summary.replicas), hide_index=True, key="monitor_replicas")
    for panel in monitor.panels(summary, reference):  # the task's own sections: classes, tags or numbers
        show_panel(panel)
    st.subheader(_("Do the images still look like the training images?"))
    show_note(monitor.Note(distance_title(summary.ood_drift), summary.ood_drift.verdict,
                           monitor.shifted(summary.ood_drift)))
    if reference.ood_scores and summary.ood:
        st.plotly_chart(monitor_charts.compared_histogram(reference.ood_scores, summary.ood,
                                                          _("Distance to the training images"), _("OOD score")),
                        key="monitor_ood")


def distance_title(drift: monitor.Drift) -> str:
    if drift.psi is None:
        return _("Distance to the training images")
    return _("Distance to the training images (drift score, PSI: {score})").format(score=number(drift.psi, 2))


def replica_rows(replicas: list[dict]) -> list[dict]:
    """The replicas' table in the reader's language (host:process names as logged)."""
    return [{_("replica"): _("not recorded") if r["replica"] == "not recorded" else r["replica"],
             _("images"): r["images"]} for r in replicas]


def show_note(note: monitor.Note) -> None:
    """The title is the page's own words; the text may quote tag names, so it is shown as typed."""
    (st.warning if note.warn else st.info)(_("**{title}**: {text}").format(title=note.title, text=md(note.text)))


def show_panel(panel: monitor.Panel) -> None:
    st.subheader(panel.heading)
    for start in range(0, len(panel.metrics), 3):
        for column, shown in zip(st.columns(3), panel.metrics[start:start + 3]):
            column.metric(shown.label, shown.value, help=shown.help or None)
    for note in panel.notes:
        show_note(note)
    for position, figure in enumerate(panel.figures):
        st.plotly_chart(figure, key=f"monitor_{panel.key}_{position}")
    if panel.table:
        st.markdown(f"**{panel.table_title}**")
        st.dataframe(list(panel.table), hide_index=True, key=f"monitor_{panel.key}_table")


def count_labels_as_feedback(log: PredictionLog) -> None:
    """Served images labelled on the Label page are feedback too: the accuracy on feedback includes them."""
    changed = labels_to_feedback(DatasetStore(space.root / "datasets"), log)
    if changed:
        st.toast(ngettext("{count} label given on the Label page now counts as feedback.",
                          "{count} labels given on the Label page now count as feedback.", changed).format(count=changed))


def review_panel(log: PredictionLog, run) -> None:
    folder = default_keep_dir(space.root, run.id)
    if not folder.is_dir():
        return
    review = kept_images_for_review(log, folder, model=run.id, limit=48)
    st.subheader(ngettext("{count} kept image to review (unknown, not sure or low confidence)",
                          "{count} kept images to review (unknown, not sure or low confidence)",
                          len(review)).format(count=len(review)))
    columns = st.columns(6)
    for position, item in enumerate(review[:12]):
        thumb = cached_thumbnail(str(item["path"]))
        if thumb is not None:
            caption = _("{label} ({confidence})").format(label=item["label"], confidence=percent(item["confidence"]))
            columns[position % 6].image(thumb, caption=md(caption))
    if review:
        send_panel(run, review)


def send_panel(run, review: list[dict]) -> None:
    """Closing the loop: the kept images into the labelling pool, where labelling them makes the next version."""
    if st.button(ngettext("Send {count} image to labelling", "Send {count} images to labelling",
                          len(review)).format(count=len(review)), key="monitor_send", type="primary",
                 help=_("They go unlabelled into the dataset this model trained on (a copy of it, for a zip), "
                        "once each: sending again adds only new images.")):
        store = DatasetStore(space.root / "datasets")
        try:
            with st.spinner(_("Checking every image...")):
                target = labelling_dataset(store, run.path, run.config, paths.home())
                st.session_state[f"monitor_sent_{run.id}"] = send_for_labelling(store, target.dataset, review, paths.home())
        except (StoreError, ArchiveRefused) as error:
            show_error(_("The images could not be sent to labelling: {reason}").format(reason=error))
        except OSError:
            show_error(_("The images could not be sent to labelling: the dataset store could not be written."))
    sent = st.session_state.get(f"monitor_sent_{run.id}")
    if sent is not None:
        st.success(md(sent.summary()))
        if sent.skipped:
            with st.expander(_("Skipped images ({count}) and why").format(count=len(sent.skipped))):
                st.dataframe([{_("file"): s.path, _("reason"): s.reason} for s in sent.skipped], hide_index=True)
        st.page_link("views/label.py", label=_("Label them on the Label page"), icon=":material/arrow_forward:")


st.title(_("6. Monitor"))
space = workspace()
source = st.radio(_("Watch"), [FROM_RUN, FROM_URL], format_func=_, horizontal=True, key="monitor_source")
run = pick_run(space, N_("serve and watch it")) if source == FROM_RUN else None
if source == FROM_RUN and run is None:
    st.stop()
if run is not None:
    with st.expander(_("Serve this model to other programs"), expanded=registry.get(run.path) is not None):
        how_to_call_panel(run, service_panel(run))
opened = None
try:
    opened = open_log(source, run)
    if opened is None:
        st.stop()
    log, model_filter = opened
    period = st.segmented_control(_("Period"), list(PERIODS), format_func=_, default="Everything",
                                  key="monitor_period") or "Everything"
    since = time.time() - PERIODS[period] if PERIODS[period] else None
    if run is not None:
        count_labels_as_feedback(log)
    rows = log.rows(model=model_filter, since=since)
except LogUnavailable as error:
    if source == FROM_RUN:
        st.info(_("No predictions logged for this model yet. Start a service above and send it images."))
    elif is_sqlite_url(st.session_state.get("monitor_url", "")):
        st.error(md(_(REFUSED)))  # the same sentence as every refusal: nothing tells which files exist
    else:
        show_error(f"{str(error)[:1].upper()}{str(error)[1:]}.")  # one sentence; no traceback, no server path
    st.stop()
if not rows:
    st.info(_("No predictions in this period yet."))
    st.stop()
reference = monitor.run_reference(run.path) if run is not None else monitor.empty_reference(rows)
show_summary(monitor.summarize(rows, reference), reference)
if run is not None:
    review_panel(log, run)
