"""open_clip's text tower for a registry entry that names one (`text_tower`: an open_clip repository on the hub).

Files come from huggingface_hub's cache (core/models/sources/timm_hub.hub_cache, read when asked), laid out as the
hub lays them (models--ORG--NAME/snapshots/REV/, refs/main): open_clip_config.json, the weights, and for a
Hugging Face tokenizer (SigLIP) its files. Found there, the snapshot folder loads through open_clip's own
`local-dir:` path, with no request to the hub at all (an offline server needs nothing else); missing, they are
downloaded into the same cache unless TRANSFERLAB_OFFLINE or HF_HUB_OFFLINE is set, in which case the message names
the repository, the file and the folder, as the image towers' does.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from core.models import backbones
from core.models.entry import WeightsUnavailable
from core.models.sources.timm_hub import hub_cache

CONFIG = "open_clip_config.json"
WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # open_clip's own order of preference
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model",
                   "vocab.json", "merges.txt")  # what a Hugging Face tokenizer may need; the repo holds some of them
_lock = threading.Lock()  # one text forward at a time: the model is shared by every page and tab


@dataclass
class TextTower:
    """The text side of a CLIP-family model: names in, unit-length embeddings in the joint space out."""
    repo: str
    model: nn.Module  # open_clip's CLIP (or CustomTextCLIP) with its image side dropped
    tokenizer: Callable[[list[str]], torch.Tensor]
    logit_scale: float  # exp of the learned temperature: cosine similarities times this are the logits
    logit_bias: float  # SigLIP's learned bias (0 for CLIP); it shifts every class alike, so softmax ignores it

    def encode(self, texts: list[str]) -> torch.Tensor:
        with _lock, torch.inference_mode():
            return self.model.encode_text(self.tokenizer(texts), normalize=True).float()


def repo_for(backbone: str) -> str:
    """The open_clip repository with this backbone's text tower, or "" when it has none."""
    return str(getattr(backbones.entry(backbone), "text_tower", "") or "")


def has_text_tower(backbone: str) -> bool:
    return bool(repo_for(backbone))


def backbones_with_text() -> list[str]:
    return [name for name in backbones.NAMES if has_text_tower(name)]


def snapshot(repo: str) -> Path | None:
    """The cached snapshot folder holding the config and a weights file, or None."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo, CONFIG, cache_dir=hub_cache())
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return folder if any((folder / name).is_file() for name in WEIGHTS) else None


def available(backbone: str) -> bool:
    repo = repo_for(backbone)
    return bool(repo) and snapshot(repo) is not None


def missing_message(repo: str) -> str:
    folder = f"models--{repo.replace('/', '--')}"
    return (f"The text tower for zero-shot is not on this computer. Put the Hugging Face repository {repo} (its "
            f"files {CONFIG} and {WEIGHTS[0]} or {WEIGHTS[1]}) into the hub cache folder {hub_cache()}, by copying "
            f"its folder {folder} from a computer that has downloaded it (set HF_HOME to use another folder).")


def load(backbone: str) -> TextTower:
    """The backbone's text tower, loaded once per cached snapshot. WeightsUnavailable with a sentence when the
    backbone has none or its files are missing and cannot be downloaded."""
    repo = repo_for(backbone)
    if not repo:
        raise WeightsUnavailable(f"{backbone} has no text tower, so it cannot classify from class names; choose "
                                 f"one of: {', '.join(backbones_with_text()) or 'none on this server'}.")
    folder = snapshot(repo) or _download(backbone, repo)
    return _load_folder(repo, str(folder))


@lru_cache(maxsize=2)  # a ViT-B text tower is ~250 MB: two backbones' at most stay in memory
def _load_folder(repo: str, folder: str) -> TextTower:
    import open_clip

    model = open_clip.create_model(f"local-dir:{folder}", device="cpu")
    model.visual = nn.Identity()  # the registry's image tower answers for images; free this copy's memory
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    model.requires_grad_(False)  # only ever read: the training head copies the embeddings, never this model
    bias = getattr(model, "logit_bias", None)
    return TextTower(repo, model.eval(), tokenizer, float(model.logit_scale.exp()),
                     float(bias) if bias is not None else 0.0)


def _download(backbone: str, repo: str) -> Path:
    """The files fetched into the hub cache (config, the first weights file the repository has, tokenizer)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    if not backbones.downloads_allowed(backbone):
        raise WeightsUnavailable(missing_message(repo))
    fetch: Callable[[str], str] = lambda name: hf_hub_download(  # noqa: E731 - the one call, four times
        repo, name, cache_dir=hub_cache(), endpoint=os.environ.get("HF_ENDPOINT") or None)
    try:
        config = Path(fetch(CONFIG))
        if _needs_tokenizer_files(config):
            for name in TOKENIZER_FILES:
                _optional(fetch, name, EntryNotFoundError)
        if not any(_optional(fetch, name, EntryNotFoundError) for name in WEIGHTS):
            raise WeightsUnavailable(missing_message(repo))
    except (OSError, EntryNotFoundError) as error:  # no network, a blocked host, or no such repository
        raise WeightsUnavailable(f"{missing_message(repo)} (download failed: {error})") from error
    return config.parent


def _optional(fetch: Callable[[str], str], name: str, missing: type[Exception]) -> str | None:
    try:
        return fetch(name)
    except missing:
        return None


def _needs_tokenizer_files(config: Path) -> bool:
    value: Any = json.loads(config.read_text(encoding="utf-8"))
    return bool(value.get("model_cfg", {}).get("text_cfg", {}).get("hf_tokenizer_name"))
