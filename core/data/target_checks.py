"""The data report's checks for targets other than one label: tags (several labels per image) and values.

Tags: how often each appears and with which others (co-occurrence), tags too rare to learn, images with none.
Values: a histogram, a constant column (nothing to learn), values far outside the rest (often a typo). Plain
sentences that quote user names as they are; the pages escape them.
"""
from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np

from core.data.report import DataReport
from core.i18n import _, listing, quoted

MIN_IMAGES_PER_TAG = 5
MIN_IMAGES_FOR_VALUES = 10
HISTOGRAM_BINS = 20
EXTREME_IQR = 3.0  # beyond Q1 - 3 IQR or Q3 + 3 IQR: "far outside the rest"


def judge(report: DataReport, common: list[str]) -> DataReport:
    report.warnings = list(common)
    if report.task == "multi":
        _tags(report)
    else:
        _values(report)
    return report


def _tags(report: DataReport) -> None:
    counts = report.classes
    if not report.images:
        report.error = _("No images were found. Put your images beside a metadata.csv with a file_name column and a "
                         "labels column (labels separated by ';'), zip them, and upload the zip.")
        return
    if not counts:
        report.error = _("No image has a label yet: give each image one or more labels in the labels column.")
        return
    pairs = Counter(pair for r in report.images for pair in combinations(sorted(r.labels), 2))
    report.details = {"tag_counts": counts, "co_occurrence": [[a, b, n] for (a, b), n in pairs.most_common(50)],
                      "images_without_tags": sum(not r.labels for r in report.images)}
    rare = [tag for tag, n in counts.items() if n < MIN_IMAGES_PER_TAG]
    if rare:
        report.warnings.append(_("Few images carry {tags} (fewer than {minimum} each): the model will hardly learn "
                                 "them. 20 or more each works much better.").format(tags=listing(rare),
                                                                                    minimum=MIN_IMAGES_PER_TAG))
    everywhere = [tag for tag, n in counts.items() if n == len(report.images)]
    if everywhere:
        report.warnings.append(_("Every image carries {tags}: there is nothing to learn about it.").format(
            tags=listing(everywhere)))
    untagged = report.details["images_without_tags"]
    if untagged:
        report.warnings.append(_("{count} image(s) carry no label: they teach the model what none of the labels "
                                 "looks like.").format(count=untagged))


def _values(report: DataReport) -> None:
    values = np.array([r.value for r in report.images if r.value is not None], dtype=float)
    if len(values) < MIN_IMAGES_FOR_VALUES:
        report.error = _("Only {count} image(s) have a value; a model that predicts a number needs at least "
                         "{minimum} (and works much better with 50 or more).").format(count=len(values),
                                                                                     minimum=MIN_IMAGES_FOR_VALUES)
        return
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    report.details = {"values": {"count": int(len(values)), "min": float(values.min()), "max": float(values.max()),
                                 "mean": float(values.mean()), "median": float(median), "std": float(values.std()),
                                 "histogram": {"counts": counts.tolist(), "edges": [round(float(e), 6) for e in edges]}}}
    if values.min() == values.max():
        report.error = _("Every image has the same value ({value}): there is nothing for a model to learn.").format(
            value=f"{values[0]:g}")
        return
    spread = q3 - q1
    extreme = [r for r in report.images if r.value is not None and spread > 0
               and not q1 - EXTREME_IQR * spread <= r.value <= q3 + EXTREME_IQR * spread]
    if extreme:
        shown = _(", ").join(f"{quoted(r.path)} ({r.value:g})" for r in extreme[:3])
        report.warnings.append(_("{count} value(s) lie far outside the rest (e.g. {examples}); check them for typos, "
                                 "since a model learns from them as from any other.").format(count=len(extreme),
                                                                                            examples=shown))
