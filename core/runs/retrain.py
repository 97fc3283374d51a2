"""Retraining: a run's settings on a newer version of its dataset (the Label page's "Train on this version" and the
Runs page's "Retrain with the new labels")."""
from __future__ import annotations

import dataclasses

from core.data.checkout import materialize, run_version, version_of_folder
from core.data.store import DatasetStore, StoreError
from core.training.config import TrainConfig


def train_on(store: DatasetStore, dataset: str, number: int, base: TrainConfig | None = None) -> TrainConfig:
    """A config that trains on this version: its folder as `data`, the version recorded with the run."""
    version = store.version(dataset, number)
    folder = materialize(store, dataset, number)
    changes = {"data": str(folder), "data_name": f"{version.name} (version {number})", "dataset_version": version.ref}
    return dataclasses.replace(base, **changes) if base else TrainConfig(**changes)


def retrain_config(config: TrainConfig, store: DatasetStore) -> TrainConfig | None:
    """The same settings on the newest version of the run's dataset; None if it has no newer version."""
    ref = config.dataset_version or version_of_folder(config.data, store)
    if not ref:
        return None
    dataset, _, number = ref.partition("@")
    try:
        newest = store.head(dataset)
    except StoreError:
        return None
    return train_on(store, dataset, newest, config) if newest > int(number or 0) else None


def retrain_candidates(configs: list[tuple[str, dict]], store: DatasetStore) -> list[tuple[str, TrainConfig]]:
    """(run id, config on the newest version) for each run whose dataset changed since it trained and that
    has not been retrained on that newest version yet."""
    trained_on = {run_version(values, store) for _, values in configs}
    out = []
    for run_id, values in configs:
        newer = retrain_config(TrainConfig.from_dict(values), store)
        if newer is not None and newer.dataset_version not in trained_on:
            out.append((run_id, newer))
    return out
