"""timm backbones whose weights live in the Hugging Face hub's own cache (huggingface_hub's layout under
$HF_HOME/hub: models--ORG--NAME/snapshots/REVISION/model.safetensors, refs/main naming the revision).

An offline server: copy the models--timm--NAME folders from a computer that downloaded them into the same place
(or point HF_HOME at a copied folder) and set HF_HUB_OFFLINE=1; nothing else is needed. The cache folder, the
endpoint and the offline switch are read when asked, not when the module is imported, so a changed setting counts.

Weights load through timm itself (`pretrained_cfg_overlay={"file": ...}`): strict, with timm's checkpoint filter.

CLIP and SigLIP: the image side here ends in the joint image-text space (the last stage keeps CLIP's projection;
SigLIP's attention pool is its embedding), and their heads start by making it unit-length (UnitLength), so a head
made from text embeddings reads cosine similarities. The text tower comes from open_clip's repository for the same
weights on the hub (`text_tower` below, e.g. timm/ViT-B-16-SigLIP), through the same cache and offline switch:
core/models/zero_shot/text_tower.py loads it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from core.data.preprocessing import Preprocessing
from core.i18n import _
from core.models.entry import Backbone, BackboneInfo, WeightsUnavailable
from core.models.staged import StagedModel, UnitLength

FILENAME = "model.safetensors"  # every timm repository on the hub carries its weights under this name
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's own reading of a boolean variable


def hub_cache() -> Path:
    """huggingface_hub's cache folder, from the environment now: HF_HUB_CACHE, else $HF_HOME/hub, else
    ~/.cache/huggingface/hub (huggingface_hub's own order; it reads them once, at its import)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


@dataclass(frozen=True)
class TimmHub(Backbone):
    name: str
    title: str
    tag: str  # timm's model name and pretrained tag; its hub repository is timm/<tag>
    shape: str  # the function in timm_shapes that cuts the network into stages ("vit", "efficientnet")
    params_m: float  # counted with torch on the network as published (checked by the tests)
    gflops: float  # multiply-adds at input_size, counted with torch's FlopCounterMode (checked by the tests)
    imagenet_top1: float
    input_size: int
    imagenet_how: str = ""
    resized: bool = False  # runs at input_size, not the pretrained config's (DINOv2's 518 px costs 6x 224's)
    fixed_size: bool = False
    text_tower: str = ""  # the open_clip hub repository with the matching text tower (CLIP, SigLIP): zero-shot

    @property
    def repo(self) -> str:
        return f"timm/{self.tag}"

    def info(self) -> BackboneInfo:
        size = self.input_size
        return BackboneInfo(self.name, self.title, self.params_m, self.gflops, self.imagenet_top1, size,
                            bundled=False, fixed_size=self.fixed_size, source="timm-hub",
                            imagenet_how=self.imagenet_how, min_input=size if self.fixed_size else 32,
                            weights_mb=round(self.params_m * 4))  # float32 safetensors: 4 bytes a parameter

    def preprocessing(self) -> Preprocessing:
        from core.models.sources import timm_shapes

        return timm_shapes.preprocessing(self.tag, self.input_size if self.resized else None)

    def build(self, num_outputs: int, pretrained: bool) -> StagedModel:
        from core.models.sources import timm_shapes

        model = getattr(timm_shapes, self.shape)(self._network(pretrained), num_outputs)
        if self.text_tower:  # the joint image-text space: a head made from text embeddings reads unit vectors
            model.head = nn.Sequential(UnitLength(), *model.head)
        return model

    def _network(self, pretrained: bool) -> nn.Module:
        from core.models.sources import timm_shapes

        weights = str(self._fetch()) if pretrained else None
        return timm_shapes.create(self.tag, weights, self.input_size if self.resized else None)

    def _cached(self) -> Path | None:
        from huggingface_hub import try_to_load_from_cache  # imported when asked: the registry stays cheap to import

        found = try_to_load_from_cache(self.repo, FILENAME, cache_dir=hub_cache())
        return Path(found) if isinstance(found, str) else None

    def weights_file(self) -> Path:
        """The cached file; while it is missing, the repository's folder in the cache (what to copy there)."""
        return self._cached() or hub_cache() / f"models--{self.repo.replace('/', '--')}"

    def weights_available(self) -> bool:
        return self._cached() is not None

    def weights_identity(self) -> str:
        cached = self._cached()
        revision = cached.parent.name if cached else "not downloaded"  # snapshots/<revision>/model.safetensors
        return f"hf:{self.repo}@{revision}/{FILENAME}"

    def downloads_allowed(self) -> bool:
        return super().downloads_allowed() and os.environ.get("HF_HUB_OFFLINE", "").upper() not in _TRUE

    def download_from(self) -> str:
        return _("the Hugging Face hub")

    def where_to_put(self) -> str:
        return _("Put the Hugging Face repository {repo} (its file {file}) into the hub cache folder {folder}, by "
                 "copying its folder {copied} from a computer that has downloaded it (set HF_HOME to use another "
                 "folder)").format(repo=self.repo, file=FILENAME, folder=hub_cache(),
                                   copied=f"models--{self.repo.replace('/', '--')}")

    def _fetch(self) -> Path:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        cached = self._cached()
        if cached is not None:
            return cached
        if not self.downloads_allowed():
            raise WeightsUnavailable(self.missing_message())
        try:
            return Path(hf_hub_download(self.repo, FILENAME, cache_dir=hub_cache(),
                                        endpoint=os.environ.get("HF_ENDPOINT") or None))
        except (OSError, EntryNotFoundError) as error:  # no network, a blocked host, or no such file there
            raise WeightsUnavailable(_("{message} (download failed: {error})").format(
                message=self.missing_message(), error=error)) from error
