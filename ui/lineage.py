"""Which dataset version each run trained on, and which runs can be retrained on newer labels.

A run trained from the Label page records its version ('<dataset>@<n>'). A run trained on a plain zip does not,
but when that zip was later imported on the Label page, the import is a version holding exactly the zip's images
with the zip's labels: matched by content hash, the run belongs to that dataset too, and relabelling it there
offers the retrain.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.data.checkout import run_version
from core.data.store import DatasetStore, StoreError
from core.i18n import _
from core.runs.retrain import train_on
from core.training.config import ConfigError, TrainConfig


@dataclass(frozen=True)
class Offer:
    run_id: str
    config: TrainConfig  # the run's settings on the newest version
    newest: str  # "Flowers, version 4"


def version_by_content(labelled: dict[str, str], store: DatasetStore) -> str:
    """The first version (newest dataset first, oldest version first) whose images and labels are exactly
    `labelled` (sha256 -> label), as '<dataset>@<n>'; '' when none is."""
    if not labelled:
        return ""
    for head in store.datasets():
        for number in range(1, head.number + 1):
            version = store.version(head.dataset, number)
            if len(version.images) == len(labelled) and all(
                    labelled.get(digest) == entry["label"] for digest, entry in version.images.items()):
                return version.ref
    return ""


def run_refs(configs: dict[str, dict[str, Any]], store: DatasetStore,
             content: Callable[[str], dict[str, str] | None]) -> dict[str, str]:
    """run id -> the version it trained on ('' if unknown). `content(data path)` gives a plain zip's or folder's
    sha256 -> label (None when it is gone); it is asked once per distinct data path."""
    refs, by_path = {}, {}
    for run_id, config in configs.items():
        ref = run_version(config, store)
        data = config.get("data", "")
        if not ref and data:
            if data not in by_path:
                labelled = content(data)
                by_path[data] = version_by_content(labelled, store) if labelled else ""
            ref = by_path[data]
        refs[run_id] = ref
    return refs


def version_name(ref: str, store: DatasetStore) -> str:
    """'Flowers, version 3' for 'a1b2...@3'; '' when the dataset is gone."""
    dataset, _at, number = ref.partition("@")
    try:
        return _("{name}, version {number}").format(name=store.version(dataset, int(number)).name, number=int(number))
    except (StoreError, ValueError):
        return ""


def retrain_offers(configs: dict[str, dict[str, Any]], refs: dict[str, str], store: DatasetStore) -> list[Offer]:
    """One offer per dataset whose newest version no run has trained on yet, for its newest run (first given)."""
    offers, seen = [], set(refs.values())
    for run_id, config in configs.items():
        dataset, _at, number = refs.get(run_id, "").partition("@")
        if not dataset:
            continue
        try:
            newest = store.head(dataset)
            if newest <= int(number) or f"{dataset}@{newest}" in seen:
                continue
            offer = train_on(store, dataset, newest, TrainConfig.from_dict(config))
        except (StoreError, ConfigError, ValueError, TypeError):
            continue
        seen.add(f"{dataset}@{newest}")
        offers.append(Offer(run_id, offer, version_name(f"{dataset}@{newest}", store)))
    return offers
