"""Closing the loop: the doubtful inputs a service kept go to the labelling pool of the workspace's dataset store.

They go through the Label page's own intake (`intake.add_uploads`): the same size, pixel and decode checks as any
upload, stored once by content hash, so sending the same images twice adds nothing the second time. They arrive
unlabelled (the store has no place for a suggested label; the Label page suggests its own once classes are seeded).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from core.data import checkout, intake
from core.data.archive import Skipped
from core.data.store import DatasetStore, StoreError, Version
from core.i18n import _, ngettext, quoted, sentences
from core.runs.folder import Run
from core.serving.predlog import PredictionLog

SERVED_PREFIX = "served-"  # how the Label page tells these images apart; the rest of the name is the prediction id


@dataclass
class SentToLabelling:
    dataset: str
    dataset_name: str
    version: int
    added: int = 0
    already_there: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> str:
        """A few sentences for the page (quotes the dataset's name: escape it before rendering it as Markdown)."""
        parts = [ngettext("{count} image added to the unlabelled pool of {name} (version {version}).",
                          "{count} images added to the unlabelled pool of {name} (version {version}).",
                          self.added).format(count=self.added, name=quoted(self.dataset_name), version=self.version)]
        if self.already_there:
            parts.append(ngettext("{count} already there (not added twice).", "{count} already there (not added "
                                  "twice).", self.already_there).format(count=self.already_there))
        if self.skipped:
            parts.append(ngettext("{count} skipped.", "{count} skipped.", len(self.skipped)).format(
                count=len(self.skipped)))
        return sentences(parts)


def labelling_dataset(store: DatasetStore, run_dir: Path, config: dict[str, Any], work_dir: Path) -> Version:
    """The dataset the model's kept images go to, so that labelling them and training again closes the loop.

    A model trained on a store version: that dataset. Otherwise its training data imported once as a dataset of its
    own (found again by name on the next send), or, when that data is gone, an empty one with the model's classes.
    """
    ref = checkout.run_version(config, store)
    if ref:
        try:
            return store.version(ref.partition("@")[0])
        except StoreError:
            pass  # deleted since: fall through to a dataset of the model's own
    data = Path(config.get("data") or "")
    name = f"{config.get('data_name') or data.stem or 'Model'} + served images"
    for version in store.datasets():
        if version.name == name:
            return version
    if str(data) not in ("", ".") and data.exists():
        return intake.import_labelled(store, data, name, work_dir).version
    return intake.new_pool(store, name, Run(run_dir).labels())


def send_for_labelling(store: DatasetStore, dataset: str, items: list[dict[str, Any]],
                       work_dir: Path) -> SentToLabelling:
    """Add the images of `items` (from `keep.kept_images_for_review`) to the pool of `dataset`, unlabelled."""
    uploads: list[tuple[str, Path]] = []
    gone: list[Skipped] = []
    for item in items:
        path = Path(item["path"])
        try:
            if path.stat().st_size > intake.MAX_IMAGE_BYTES:  # checked again by intake; here so it is never read
                gone.append(Skipped(path.name, _("larger than {size} MiB; skipped").format(
                    size=intake.MAX_IMAGE_BYTES >> 20)))
                continue
            uploads.append((SERVED_PREFIX + path.name, path))  # read from disk by the intake, never whole
        except OSError:
            gone.append(Skipped(path.name, _("no longer kept (the service dropped it to stay within its limit)")))
    result = intake.add_uploads(store, dataset, store.head(dataset), uploads, None, work_dir)
    return SentToLabelling(dataset, result.version.name, result.version.number, result.added,
                           len(result.duplicates), gone + result.skipped)


def served_labels(store: DatasetStore) -> dict[str, str]:
    """Image content (sha256, as the log's content_hash) -> the label a person gave that served image on the Label
    page (in any dataset's newest version), so the Monitor page's accuracy on feedback counts it without anyone
    calling /feedback, for every answer to that same picture."""
    labels: dict[str, str] = {}
    for version in store.datasets():
        for digest, entry in version.images.items():
            if entry.get("label") and str(entry.get("name") or "").startswith(SERVED_PREFIX):
                labels[digest] = str(entry["label"])
    return labels


def labels_to_feedback(store: DatasetStore, log: PredictionLog) -> int:
    """Writes `served_labels` into the log as feedback; returns how many answers got a new true label. A store or
    log that cannot be read changes nothing (the Monitor page still shows what it has; the next visit retries)."""
    try:
        return log.add_feedback_by_content(served_labels(store))
    except (StoreError, OSError, SQLAlchemyError):
        return 0
