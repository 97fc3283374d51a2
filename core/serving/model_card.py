"""The model card: one self-contained HTML page about a run (data, settings, honest metrics, limits).

Images are inline (base64 PNG) and every user-supplied string is escaped, so the file can be mailed, archived
or opened offline without running anything.
"""
from __future__ import annotations

import base64
import datetime
import html
import io
import traceback
from pathlib import Path
from typing import Any

from PIL import Image

from core import tasks
from core.i18n import N_, _, language, number, percent
from core.insight.explain import CAVEAT, explain
from core.runs.folder import BUNDLE_FILES, MODEL_CARD, Run
from core.stats import conformal
from core.tasks import Evaluation
from core.tasks.base import Measure

EXAMPLE_MISTAKES = 6
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
          ".note{background:#fff8e1;padding:.5em 1em;border-left:4px solid #f0b400}"
          "figure{display:inline-block;margin:.4em;width:200px;vertical-align:top}img{width:200px}")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: Any) -> str:
    """Every share on the card, macro-F1 included, as the app's pages show it: a percentage with one decimal."""
    return percent(value, 1) if isinstance(value, (int, float)) else _("n/a")


def _interval(pair: Any) -> str:
    return _("{low} to {high}").format(low=percent(pair[0]), high=percent(pair[1])) \
        if isinstance(pair, list) and len(pair) == 2 else _("n/a")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _mistake_figures(run: Run, evaluation: Evaluation) -> str:
    from core.serving.inference import Predictor

    mistakes = evaluation.mistakes()[:EXAMPLE_MISTAKES]
    if not mistakes:
        return f"<p>{_e(_('No validation image was answered wrongly.'))}</p>"
    predictor, figures = Predictor(run.path), []
    for mistake in mistakes:
        picture = run.val_pixels(mistake.get("sha256", ""))
        if picture is None:
            continue  # an older run without its validation images: the card still has everything else
        predicted = mistake["predicted"]
        index = predictor.labels.index(predicted) if isinstance(predicted, str) and predicted in predictor.labels \
            else None  # tags and numbers: where it looked for its strongest answer
        found = explain(predictor.model, predictor.preprocessing, picture, index)
        caption = _("{name}: {answer}").format(name=mistake["path"], answer=predictor.task.describe(mistake))
        figures.append(f"<figure><img alt='' src='{_png(found.image)}'><figcaption>{_e(caption)}</figcaption></figure>")
    return "".join(figures) or f"<p>{_e(_('The validation images are no longer available.'))}</p>"


def _data_summary(config: dict[str, Any], per_class: list[dict[str, Any]]) -> str:
    """Images per class and the data report's warnings, when the data is still where the run found it."""
    from core import paths
    from core.data.datasets import inspect_data

    validation = {r["label"]: r["support"] for r in per_class}
    try:
        data = inspect_data(Path(config.get("data", "")), paths.home())
    except Exception:  # moved or deleted since training: the validation counts are still known
        return _table([_("class"), _("validation images")], [[k, v] for k, v in validation.items()])
    table = _table([_("class"), _("images"), _("validation images")],
                   [[label, count, validation.get(label, 0)] for label, count in data.classes.items()])
    return table + "".join(f"<p class='note'>{_e(w)}</p>" for w in data.warnings)


_OPTIMIZERS = {"adamw": "AdamW", "adam": "Adam", "sgd": N_("SGD with momentum")}
_AUGMENT = {"auto": N_("automatic (none when only the new last layer learns, else light)"), "none": N_("none"),
            "light": N_("light (random crops and flips)"), "strong": N_("strong (also colour and geometry changes)")}


def settings_in_words(config: dict[str, Any]) -> list[list[str]]:
    """The run's settings as a reader of the card says them: no 'lr None', no empty fields, no raw depths."""
    from core.models import backbones
    from core.training.advice import learned_words

    name = config.get("backbone", "")
    try:
        title = backbones.info(name).title
    except (KeyError, ValueError):
        title = name
    patience = config.get("early_stopping") or 0
    epochs = _("{epochs}, stopping early after {patience} without improvement").format(
        epochs=config.get("epochs"), patience=patience) if patience else f"{config.get('epochs')}"
    lr, augment, optimizer = config.get("lr"), config.get("augment"), config.get("optimizer")
    rows = [
        [_("data"), config.get("data_name") or Path(config.get("data", "")).name],
        [_("pretrained network (backbone)"), title],
        [_("starting weights"), _("random (no pretraining)") if config.get("weights") == "none" else
         _("pretrained on ImageNet")],
        [_("what was retrained"), learned_words(config)],
        [_("passes over the data (epochs)"), epochs],
        [_("learning rate"), _("chosen automatically") if lr is None else f"{lr:g}"],
        [_("batch size"), str(config.get("batch_size"))],
        [_("optimizer"), _(_OPTIMIZERS[optimizer]) if optimizer in _OPTIMIZERS else str(optimizer)],
        [_("augmentation"), _(_AUGMENT[augment]) if augment in _AUGMENT else str(augment)],
        [_("image size"), _("the backbone's own") if config.get("image_size") is None else
         _("{size} px").format(size=config["image_size"])],
        [_("validation share"), _("{share} of the images (unless the data has a val/ folder)").format(
            share=_pct(config.get("val_split")))],
        [_("random seed"), str(config.get("seed"))],
        [_("two stages (last layer first)"), _("yes") if config.get("two_stage") else _("no")],
    ]
    return [row for row in rows if row[1] not in ("", "None")]


def _measure(measure: Measure, value: Any) -> str:
    if not isinstance(value, (int, float)) or value != value:
        return _("n/a")
    return _pct(value) if measure.percent else f"{value:.3g}"


def _metrics(report: Evaluation) -> str:
    """The task's own measures with their intervals, then its per-label table (none for numbers)."""
    task = tasks.get(report.task)
    table = _table([_("measure"), _("value"), _("95% interval")], [
        [_(m.title), _measure(m, report.metric(m.key)), _("{low} to {high}").format(
            low=_measure(m, report.intervals[m.key][0]), high=_measure(m, report.intervals[m.key][1]))
         if len(report.intervals.get(m.key) or []) == 2 else _("n/a")] for m in task.measures])
    if not report.per_label or not task.label_columns:
        return table
    return table + _table([_("name"), *(_(m.title) for m in task.label_columns), _("recall 95% interval")],
                          [[r["label"], *(_measure(m, r.get(m.key)) for m in task.label_columns),
                            _interval(r.get("recall_interval"))] for r in report.per_label])


def _confidence_sections(calibration: dict[str, Any], abstention: dict[str, Any]) -> list[str]:
    """Temperature scaling and the "not sure" threshold: what a run that gives one label per image has."""
    if not (calibration or abstention):
        return []
    return [_h2(_("Calibration")) + (_p(_(
        "On the validation images the model's stated confidence was off by {before} percentage points on average, "
        "and by {after} after calibration (temperature scaling); answers use the calibrated confidence.").format(
            before=number(calibration["ece_before"] * 100, 1), after=number(calibration["ece_after"] * 100, 1)))
        + _table([_("temperature"), _("ECE before"), _("ECE after")], [[
            f"{calibration['temperature']:.2f}", f"{calibration['ece_before']:.3f}", f"{calibration['ece_after']:.3f}"]])
        if calibration else _p(_("Not calibrated (no validation images)."))),
        _h2(_("Not sure: the abstention trade-off")) + (_p(_(
            "Answers below {threshold} confidence are marked not sure. On validation the model then answers "
            "{coverage} of images and is right on {accuracy} of those (target {target}).").format(
                threshold=_pct(abstention["threshold"]), coverage=_pct(abstention["coverage"]),
                accuracy=_pct(abstention["accuracy"]), target=_pct(abstention["target_accuracy"])))
            if abstention.get("accuracy") is not None else _p(_(
                "No threshold reached the target accuracy on validation, so every answer is marked not sure.")))]


def _h2(text: str) -> str:
    return f"<h2>{_e(text)}</h2>"


def _p(text: str) -> str:
    return f"<p>{_e(text)}</p>"


def _sections(run: Run, config: dict[str, Any], report: Evaluation) -> list[str]:
    per_class = report.per_label
    trust = report.trust
    calibration, abstention, ood = trust.get("calibration") or {}, trust.get("abstention") or {}, trust.get("ood")
    worst = sorted(per_class, key=lambda r: r["recall"])[:3]
    task = tasks.get(report.task)
    missing = _p(_("Not available for this run."))
    sections = [
        _h2(_("Intended use and limits")) + _p(_(
            "What it answers: {what}. A model for the data below, trained on the user's own labelled images by "
            "transfer learning. It only knows these classes: anything else gets one of them, unless it is flagged as "
            "unlike the training images. Its numbers come from a small validation set; read the intervals, not just "
            "the single numbers. Answers marked not sure should go to a person.").format(what=_(task.title))),
        _h2(_("Data")) + _data_summary(config, per_class),
        _h2(_("Settings")) + _table([_("setting"), _("value")], settings_in_words(config)),
        _h2(_("Metrics (validation)")) + _metrics(report) + "".join(f"<p class='note'>{_e(n)}</p>"
                                                                    for n in task.interval_notes(report)),
        _h2(_("Worst classes")) + _table([_("class"), _("recall"), _("images")],
                                         [[r["label"], _pct(r["recall"]), r["support"]] for r in worst])
        if worst else "",
        _h2(_("A range instead of one answer")) + (_p(text) if (text := conformal.in_words(
            trust.get("conformal") or {})) else missing),
        *_confidence_sections(calibration, abstention),
        _h2(_("Unknown inputs")) + (_p(_(
            "An image whose distance to its {count} most similar training images exceeds {threshold} is answered "
            "{answer}.").format(count=ood["k"], threshold=f"{ood['threshold']:.3f}",
                                answer=_("'This does not look like any of your training images'"))) if ood else missing),
        _h2(_("Example mistakes, with heatmaps")) + f"<p class='note'>{_e(_(CAVEAT))}</p>" + _mistake_figures(run, report),
    ]
    return sections


def build_html(run_dir: Path) -> str:
    run = Run(run_dir)
    config = run.config()
    report = run.evaluation() or Evaluation(str(config.get("task", "single")), [], 0, {})
    title = _("Model card: {backbone} on {data}").format(backbone=config.get("backbone", "model"),
                                                          data=config.get("data_name") or Path(config.get("data", "")).name)
    written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(_sections(run, config, report))
    lang = "zh-CN" if language() == "zh_CN" else "en"  # the card is written in the language of whoever asked for it
    return (f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>"
            f"{_p(_('Run {run}, written {when} by TransferLab.').format(run=run.id, when=written))}{body}</body></html>")


def write_model_card(run_dir: Path) -> Path:
    target = Run(run_dir).file(MODEL_CARD)
    tmp = target.with_name(f".{MODEL_CARD}.tmp")
    tmp.write_text(build_html(run_dir), encoding="utf-8")
    tmp.replace(target)
    return target


def bundle_extras(run_dir: Path) -> list[str]:
    """Files of the run folder that go into the export bundle beside the model; the card is written if missing."""
    run = Run(run_dir)
    if not run.file(MODEL_CARD).exists():
        try:
            write_model_card(run_dir)
        except Exception:  # the bundle's promise is the model; a card that cannot be written is left out
            traceback.print_exc()
    return [name for name in (*BUNDLE_FILES, MODEL_CARD) if run.file(name).exists()]
