"""What to recommend to someone who does not know what a freeze depth is."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from core.i18n import N_, _, ngettext, quoted
from core.models import adapters, backbones


@dataclass(frozen=True)
class StageTable:
    names: tuple[str, ...]
    parameters: tuple[int, ...]
    head_for_two_classes: int
    head_width: int  # each extra class adds one row of this many weights (plus a bias)
    adapter_widths: tuple[int, ...] = ()  # per stage, adapter weights per unit of rank (0: nothing to adapt there)


@lru_cache(maxsize=32)
def stage_table(name: str) -> StageTable:
    model = backbones.skeleton(name, 2)  # on the meta device: VGG16's 138 M weights need no memory to be counted
    return StageTable(tuple(model.stage_names), tuple(sum(p.numel() for p in s.parameters()) for s in model.stages),
                      sum(p.numel() for p in model.head.parameters()), model.head[-1].in_features,
                      adapters.stage_widths(model))


def freeze_label(name: str, depth: int) -> str:
    names = stage_table(name).names
    if depth == 0:
        return _("0 · fine-tune everything")
    if depth >= len(names):
        return _("{count} · feature extraction only (train the new head)").format(count=len(names))
    retrained = len(names) - depth
    if retrained == 1:  # not ngettext: the one-stage sentence has no number to show
        return _("{depth} · retrain the last stage (kept as they are up to {stage})").format(
            depth=depth, stage=quoted(names[depth - 1]))
    return _("{depth} · retrain the last {count} stages (kept as they are up to {stage})").format(
        depth=depth, count=retrained, stage=quoted(names[depth - 1]))


# How many stages, in words (translated where shown): "the last two stages" reads better than a digit.
_NUMBERS = ("", "", N_("two"), N_("three"), N_("four"), N_("five"), N_("six"), N_("seven"), N_("eight"), N_("nine"),
            N_("ten"))


def _last_stages(count: int | str) -> str:
    """"the last stage", "the last two stages", "the last 12 stages"."""
    if count == 1:
        return _("the last stage")
    in_words = _(_NUMBERS[count]) if isinstance(count, int) and 1 < count < len(_NUMBERS) else count
    return _("the last {count} stages").format(count=in_words)


def freeze_words(name: str, depth: int | str) -> str:
    """What a freeze depth retrains, in words a newcomer reads first ("the last two stages"); freeze_label adds
    the numbers. `depth` is a number of frozen stages or "all", as saved in a run's config."""
    try:
        total = len(stage_table(name).names)
    except (KeyError, ValueError):  # a run of a backbone this version no longer has
        return _("freeze depth {depth}").format(depth=depth)
    depth = total if depth == "all" or not isinstance(depth, int) else depth
    if depth <= 0:
        return _("everything")
    retrained = total - depth
    if retrained <= 0:
        return _("only the new last layer")
    return _last_stages(retrained)


def learned_words(config: dict) -> str:
    """What learned in a run, in words, from its saved config (the Runs page, the model card): an adapter run keeps
    its freeze depth at "all", which freeze_words alone would call "only the new last layer"."""
    if config.get("strategy") != "adapters":
        return freeze_words(config.get("backbone", ""), config.get("freeze_depth", "all"))
    stages, rank = config.get("adapter_stages", 2), config.get("adapter_rank", "?")
    return _("adapters (LoRA rank {rank}) in {stages}; every pretrained weight kept").format(
        rank=rank, stages=_last_stages(stages))


def trainable_parameters(name: str, frozen: int, num_classes: int) -> tuple[int, int]:
    """(trainable, total) parameters when the first `frozen` stages are frozen."""
    table = stage_table(name)
    per_stage = table.parameters
    head = _head(table, num_classes)
    return sum(per_stage[frozen:]) + head, sum(per_stage) + head


def _head(table: StageTable, num_classes: int) -> int:
    return table.head_for_two_classes + (num_classes - 2) * (table.head_width + 1)


def adapter_parameters(name: str, rank: int, stages: int, num_classes: int) -> tuple[int, int]:
    """(trainable, total) parameters with rank-`rank` adapters in the last `stages` stages holding layers to adapt:
    the adapters and the new head train; the total counts the adapters too (they are extra weights until merged)."""
    table = stage_table(name)
    extra = adapters.parameter_count(table.adapter_widths, rank, stages)
    head = _head(table, num_classes)
    return extra + head, sum(table.parameters) + extra + head


def adapter_prefix(name: str, stages: int) -> int:
    """How many stages run before the first adapter (their output is computed once per image, as in feature
    extraction): the `frozen` to give the time estimate."""
    return adapters.first_adapted(stage_table(name).adapter_widths, stages)


def adapter_label(name: str, stages: int) -> str:
    """Where the adapters go, in words: "adapters in 'blocks 6' and 'head conv'"."""
    table = stage_table(name)
    names = [quoted(table.names[i]) for i in adapters.adapted_stages(table.adapter_widths, stages)]
    # Translators: the last two of several stage names, e.g. 'blocks 6' and 'head conv'.
    where = names[0] if len(names) == 1 else _("{names} and {last}").format(names=_(", ").join(names[:-1]),
                                                                            last=names[-1])
    return _("adapters in {stages} (every pretrained weight stays as it is)").format(stages=where)


def recommend_freeze(num_images: int, total_stages: int, on_cpu: bool = False) -> tuple[int, str]:
    """(depth, why). Little data cannot retrain millions of weights without memorising it. On a CPU, fine-tuning
    is slow, so start with feature extraction (seconds) and offer fine-tuning as the next step."""
    depth, why = _by_data(num_images, total_stages)
    if on_cpu and depth < total_stages:
        return total_stages, _("{why} But this computer trains on its processor (no GPU), where that takes long: "
                               "start with only the new last layer, which takes seconds, and let more of the network "
                               "learn as a next step once you have seen the result.").format(why=why)
    return depth, why


def _by_data(num_images: int, total_stages: int) -> tuple[int, str]:
    if num_images < 500:
        return total_stages, ngettext(
            "With {count} image, keep the pretrained layers as they are and train only the new final layer: it is "
            "fast and avoids memorising your few examples.",
            "With {count} images, keep the pretrained layers as they are and train only the new final layer: it is "
            "fast and avoids memorising your few examples.", num_images).format(count=num_images)
    if num_images < 3000:
        return max(total_stages - 2, 0), _("With {count} images, letting the last two stages adapt to your pictures "
                                           "usually helps, while the early, general layers stay fixed.").format(
            count=num_images)
    if num_images < 10000:
        return total_stages // 2, _("With {count} images there is enough data to retrain the later half of the "
                                    "network.").format(count=num_images)
    return 0, _("With {count} images, fine-tuning the whole network usually gives the best accuracy.").format(
        count=num_images)


# Measured (bench/backbones_small_data.py, ants/bees photos, linear probe, 20 draws a size): EfficientNet-Lite2 beat
# Lite0 by +4.0 points at 10 photos a class (95% interval +2.5 to +5.4), +2.0 at 20 and +1.9 at 40, at about twice
# the compute per image; Lite1 was no better below 40 a class. Below this many images a class, accuracy is what
# small data lacks and a run is short anyway; above it, Lite0's speed wins.
SMALL_DATA_IMAGES_PER_CLASS = 100


def recommend_backbone(images_per_class: float) -> tuple[str, str]:
    """(backbone, why) for someone who does not know what a backbone is: by how much data they have."""
    if images_per_class < SMALL_DATA_IMAGES_PER_CLASS:
        return "efficientnet_lite2", _(
            "With about {count} images a class, EfficientNet-Lite2 recognised about 2 to 4 more photos in 100 than the "
            "smaller Lite0 in our tests on real photos, at about twice the computing time; it works offline like "
            "Lite0.").format(count=f"{images_per_class:.0f}")
    return "efficientnet_lite0", _("With about {count} images a class, the fast EfficientNet-Lite0 is as accurate as "
                                   "the larger ones in our tests and trains in about half the time.").format(
        count=f"{images_per_class:.0f}")
