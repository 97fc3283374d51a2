"""The Monitor's part for several labels per image (tags): how often each tag is given to the images sent against
how often the training images carry it, the tags whose share moved clearly, tags per image, and per-tag accuracy
on the true tags fed back.

A tag's move is flagged only when its two 95% Wilson intervals (served: over the images sent; training: over the
validation images) do not overlap and the shares differ by at least MIN_MOVE: with a few validation images only a
large move is flagged, and chance alone flags a steady tag well under 1% of the time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.i18n import N_, _, ngettext, number, percent, quoted, sentences
from core.serving import monitor_charts
from core.serving.monitor_base import MIN_FOR_DRIFT, Metric, Note, Panel, Watch, answer_of, none_yet, share, too_few_answers
from core.stats.intervals import wilson
from core.tasks import Evaluation

MIN_MOVE = 0.1  # shares closer than 10 points are not called a move, however many images were sent
SAID = 3  # moved tags named in sentences; the chart shows them all
FEEDBACK_HELP = N_("A reported answer names the image's true tags (separated by ';'); a tag it does not name counts "
                   "as absent.")
MOVES = {"more": N_("{tag} is given much more often than in the training data: to {served} of the images sent, "
                    "against {training} of the training images."),
         "less": N_("{tag} is given much less often than in the training data: to {served} of the images sent, "
                    "against {training} of the training images.")}


@dataclass(frozen=True)
class TagReference:
    shares: dict[str, float]  # share of validation images carrying each tag (the split is like training)
    images: int
    tags_per_image: float | None


@dataclass(frozen=True)
class TagSummary:
    tags: list[dict[str, Any]]  # per tag: label, served, training, moved ("more", "less" or "")
    images: int
    verdict: str
    tags_per_image: float | None
    unsure: float | None
    feedback: dict[str, Any]


def served_tags(row: dict[str, Any]) -> list[str]:
    """The tags an answer gave: the logged answer's list, else the ';'-joined label column (older rows)."""
    answer = answer_of(row)
    if isinstance(answer.get("labels"), list):
        return [str(tag) for tag in answer["labels"]]
    return split_tags(row.get("label"))


def split_tags(text: Any) -> list[str]:
    return [tag.strip() for tag in str(text).split(";") if tag.strip()] if text else []


def moved(served: int, images: int, training: float, reference_images: int) -> str:
    """'more', 'less' or '' for one tag: given to `served` of `images` images sent, on `training` of the
    reference's validation images."""
    low, high = wilson(served, images)
    known = round(training * reference_images)
    ref_low, ref_high = wilson(known, reference_images)
    share_sent = served / images
    if abs(share_sent - training) < MIN_MOVE or (low <= ref_high and ref_low <= high):
        return ""
    return "more" if share_sent > training else "less"


def tag_shares(rows: list[dict[str, Any]], reference: TagReference) -> tuple[list[dict[str, Any]], str]:
    given = [set(served_tags(r)) for r in rows]
    labels = list(reference.shares) + sorted({t for tags in given for t in tags} - set(reference.shares))
    judge = len(rows) >= MIN_FOR_DRIFT and reference.images >= 5
    found = []
    for label in labels:
        count, training = sum(label in tags for tags in given), reference.shares.get(label, 0.0)
        direction = moved(count, len(rows), training, reference.images) if judge else ""
        found.append({"label": label, "served": count / len(rows) if rows else 0.0, "training": training,
                      "moved": direction})
    if reference.images < 5:
        return found, _("No validation tags to compare with for this model.")
    if len(rows) < MIN_FOR_DRIFT:
        return found, too_few_answers(len(rows))
    return found, moved_in_words(found)


def moved_in_words(tags: list[dict[str, Any]]) -> str:
    flagged = sorted((t for t in tags if t["moved"]), key=lambda t: -abs(t["served"] - t["training"]))
    if not flagged:
        return _("No tag is given clearly more or less often than in the training data.")
    said = [_(MOVES[t["moved"]]).format(tag=quoted(t["label"]), served=percent(t["served"]),
                                        training=percent(t["training"])) for t in flagged[:SAID]]
    if len(flagged) > SAID:
        more = len(flagged) - SAID
        said.append(ngettext("{count} more tag moved too (see the chart).", "{count} more tags moved too (see the "
                             "chart).", more).format(count=more))
    said.append(_("If the images sent have changed, consider adding such images to the data and training again."))
    return sentences(said)


def tag_feedback(rows: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """Per tag, on the images whose true tags were reported (the first report counts): right, missed, given
    wrongly; and the share of images with every tag right."""
    judged = [(set(served_tags(r)), set(split_tags(r["feedback_label"]))) for r in rows if r.get("feedback_label")]
    seen = sorted({t for given, true in judged for t in given | true} - set(labels))
    per_tag = []
    for label in [*labels, *seen]:
        right = sum((label in given) == (label in true) for given, true in judged)
        missed = sum(label in true and label not in given for given, true in judged)
        wrong = sum(label in given and label not in true for given, true in judged)
        per_tag.append({"tag": label, "right": share(right / len(judged)) if judged else none_yet(),
                        "missed": missed, "given wrongly": wrong})
    exact = sum(given == true for given, true in judged)
    return {"images": len(judged), "exact": exact / len(judged) if judged else None,
            "per_tag": per_tag if judged else []}


class TagWatch(Watch):
    name = "tags"
    answer_key = "labels"

    def reference(self, evaluation: Evaluation | None, labels: list[str]) -> TagReference:
        if evaluation is None or not evaluation.num_images:
            return TagReference({label: 0.0 for label in labels}, 0, None)
        images = int(evaluation.num_images)
        supports = {str(c["label"]): int(c.get("support", 0)) for c in evaluation.per_label}
        return TagReference({label: count / images for label, count in supports.items()}, images,
                            sum(supports.values()) / images)

    def summarize(self, rows: list[dict[str, Any]], reference: TagReference | None) -> TagSummary:
        reference = reference or TagReference({}, 0, None)
        tags, verdict = tag_shares(rows, reference)
        per_image = sum(len(served_tags(r)) for r in rows) / len(rows) if rows else None
        unsure = sum(bool(r["unsure"]) for r in rows) / len(rows) if rows else None
        return TagSummary(tags, len(rows), verdict, per_image, unsure, tag_feedback(rows, list(reference.shares)))

    def panels(self, summary: TagSummary, reference: TagReference | None) -> list[Panel]:
        feedback = summary.feedback
        if reference is None or reference.tags_per_image is None:
            average = _("On average over the images sent.")
        else:
            average = _("On average over the images sent; {count} on the training images.").format(
                count=number(reference.tags_per_image, 1))
        judged = ngettext("Of {count} image whose true tags were reported.",
                          "Of {count} images whose true tags were reported.", feedback["images"]).format(
            count=feedback["images"])
        metrics = (Metric(_("Tags per image"), none_yet() if summary.tags_per_image is None
                          else number(summary.tags_per_image, 1), average),
                   Metric(_("Not sure"), share(summary.unsure),
                          _("Answers where some tag's probability was close to its threshold.")),
                   Metric(_("All tags right on feedback"), share(feedback["exact"]),
                          sentences([judged, _(FEEDBACK_HELP)])))
        warn = any(t["moved"] for t in summary.tags)
        title = ngettext("Per tag, on the {count} image whose true tags were reported",
                         "Per tag, on the {count} images whose true tags were reported",
                         feedback["images"]).format(count=feedback["images"]) if feedback["images"] else ""
        return [Panel("tags", _("Tags given, against the training data"), metrics,
                      (Note(_("Tag shares"), summary.verdict, warn),), (monitor_charts.tag_shares(summary.tags),),
                      tuple(per_tag_rows(feedback["per_tag"])), title)]


def per_tag_rows(per_tag: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-tag table with its column names in the reader's language (the tags themselves as given)."""
    columns = {"tag": _("tag"), "right": _("right"), "missed": _("missed"), "given wrongly": _("given wrongly")}
    return [{columns[key]: value for key, value in row.items()} for row in per_tag]
