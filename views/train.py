"""Step 2: choose a backbone and how it adapts to your images (feature extraction, fine-tuning the last stages, or
adapters), start, and watch it learn."""
import streamlit as st

from core import tasks
from core.data.archive import ArchiveRefused
from core.i18n import _, duration, ngettext, number, percent
from core.models import backbones
from core.runs import folder as runs
from core.runs import waiting
from core.text import md
from core.training import advice, devices, estimate
from core.training.config import (
    ADAPTER_RANKS,
    AUGMENTATIONS,
    BATCH_SIZES,
    DEVICES,
    FREEZE_ALL,
    OPTIMIZERS,
    RANGES,
    ConfigError,
    TrainConfig,
)
from core.training.config import defaults as config_defaults
from ui.common import class_rules, describe_run, is_id, job_manager, load_report, remember, show_error, url_param, workspace
from ui.compare import compare_panel
from ui.language import in_language
from ui.progress import show_job

AUGMENT_HELP = _("auto: none when only the new last layer learns (then what the network sees in each image is "
                "computed once and training takes seconds), light otherwise. light: random crops and flips. strong: "
                "also colour and geometry changes.")  # the page runs anew each time: _() here follows the language
EXTRACT, FINE_TUNE, ADAPTERS = "extract", "fine-tune", "adapters"
STRATEGY_TITLES = {EXTRACT: _("Feature extraction"), FINE_TUNE: _("Fine-tune the last N stages"),
                   ADAPTERS: _("Adapters (LoRA)")}
STRATEGY_HELP = _("Feature extraction: the pretrained network stays as it is and only a new last layer learns (fast, "
                 "best with few images). Fine-tuning: the last stages of the network learn too. Adapters: every "
                 "pretrained weight stays as it is and small low-rank additions (LoRA) learn inside the last stages, "
                 "with far fewer trainable weights than fine-tuning them.")

ws, manager = workspace(), job_manager()
st.title(_("2. Train"))
job_id = url_param("job")
if is_id(job_id) and (ws.runs / job_id).is_dir():
    show_job(manager, ws, job_id)
    if st.button(_("Set up another training")):
        st.session_state.pop("url_job", None)
        del st.query_params["job"]
        st.rerun()
    st.stop()

active = [r for r in runs.list_runs(ws.runs) if r.state in runs.ACTIVE_STATES]
if active:  # another tab (or before a reload) started it: say so here, so nobody starts it twice
    sentence = _("A training run of this workspace is queued: {run}.") if active[0].state == "queued" else \
        _("A training run of this workspace is running: {run}.")
    st.info(md(sentence.format(run=describe_run(active[0]))), icon=":material/model_training:")
    st.page_link("views/train.py", label=_("Watch it"), icon=":material/visibility:",
                 query_params={"ws": ws.key, "job": active[0].id})

dataset = ws.dataset()
if not dataset:
    st.info(_("First choose your images on the **Data** page."))
    st.page_link("views/data.py", label=_("Go to 1. Data"), icon=":material/arrow_back:")
    st.stop()
try:
    report = load_report(dataset)
except (ArchiveRefused, OSError) as error:
    show_error(_("The dataset cannot be used: {reason}").format(reason=error))
    st.stop()
if not report.trainable:
    show_error(report.error)
    st.stop()
task = tasks.get(report.task)
num_images, num_outputs = len(report.images), task.outputs(report.labels)
counted = _("{images} images in {classes} classes").format(images=number(num_images), classes=len(report.classes)) \
    if report.labels else ngettext("{count} image", "{count} images", num_images).format(count=number(num_images))
st.caption(_("Dataset: **{name}**: {counted}. What the model learns: **{what}** (read from your data on the Data "
             "page).").format(name=md(dataset["name"]), counted=counted, what=_(task.title)))


def weights_line(name: str) -> str:
    """One plain sentence on where the backbone's pretrained weights are, from the registry's own status."""
    if backbones.weights_available(name) or backbones.downloads_allowed(name):
        return backbones.weights_status(name)
    return _("The pretrained weights for this backbone are not on this computer and cannot be downloaded on this "
             "server. {where}, or choose the bundled EfficientNet-Lite0, which works offline.").format(
        where=backbones.entry(name).where_to_put())


rules = class_rules()  # a class's student sees only what the teacher allows (the job manager refuses it anyway)
st.subheader(_("Backbone"))
st.caption(_("A network already trained on ImageNet's 1.2 million photos. Bigger ones are more accurate and slower."))
catalogue = [b for b in backbones.catalogue() if rules is None or b.name in rules.backbones]
if rules is None and tasks.get(report.task).compares_backbones:
    with st.expander(_("Compare the backbones on my images first")):
        compare_panel(ws, dataset)
st.dataframe([{
    _("backbone"): b.title, _("parameters (M)"): b.params_m, _("compute (GFLOPs)"): b.gflops,
    _("ImageNet accuracy (%)"): round(b.imagenet_top1, 1), _("accuracy measured as"): b.imagenet_how or _("fine-tuned"),
    _("weights"): backbones.weights_state(b.name),
} for b in catalogue], hide_index=True)
names = [b.name for b in catalogue]
suggested, suggested_why = advice.recommend_backbone(num_images / max(len(report.labels), 1))
if not tasks.get(report.task).backbone_advice:  # the measurement behind the suggestion counted images a class
    suggested, suggested_why = backbones.BUNDLED, ""
suggested = suggested if suggested in names else names[0]
backbone = st.selectbox(_("Backbone"), names, index=names.index(suggested), key="backbone",
                        format_func=lambda n: _("{backbone} (bundled, works offline)").format(
                            backbone=backbones.info(n).title) if backbones.info(n).bundled else backbones.info(n).title)
if suggested_why:
    st.caption(_("Suggested for your data: {backbone}. {why}").format(backbone=backbones.info(suggested).title,
                                                                      why=suggested_why))
weights = "default"
if backbones.weights_available(backbone) or backbones.info(backbone).bundled:
    st.caption(_("Pretrained weights: {where}").format(where=md(weights_line(backbone))))
else:  # said before anything starts; a run started anyway ends with the same sentence
    if backbones.downloads_allowed(backbone):
        st.info(md(weights_line(backbone)), icon=":material/download:")
    else:
        st.warning(md(weights_line(backbone)))
    if st.checkbox(_("Train from random initialisation instead (no download; needs far more data to work well)"),
                   key="random_init"):
        weights = "none"

st.subheader(_("How the network learns from your images"))
table = advice.stage_table(backbone)
total = len(table.names)
on_cpu = not manager.gpus and not manager.mps
recommended, why = advice.recommend_freeze(num_images, total, on_cpu=on_cpu)
offered = list(STRATEGY_TITLES) if rules is None or rules.fine_tuning else [EXTRACT]
strategy = st.radio(_("Strategy"), offered, index=0 if recommended >= total or len(offered) == 1 else 1,
                    key="strategy", format_func=STRATEGY_TITLES.get, help=STRATEGY_HELP)
recommended_words = _("feature extraction") if recommended >= total else advice.freeze_words(backbone, recommended)
st.caption(_("Recommended: {what}. {why}").format(what=recommended_words, why=why))
depth, rank, adapter_stages = total, 8, 2
if strategy == FINE_TUNE:
    options = list(range(total - 1, -1, -1))
    depth = st.select_slider(_("What learns from your images"), options=options, key=f"depth_{backbone}",
                             value=min(recommended, total - 1), format_func=lambda d: advice.freeze_words(backbone, d),
                             help=_("The pretrained network is a stack of stages, from general (edges, textures) to "
                                    "specific. Keeping more stages as they are (a higher *freeze depth*) trains faster "
                                    "and needs fewer images."))
    st.caption(_("In numbers: {stages}.").format(stages=advice.freeze_label(backbone, depth)))
    trainable, every = advice.trainable_parameters(backbone, depth, num_outputs)
elif strategy == ADAPTERS:
    cols = st.columns(2)
    rank = cols[0].selectbox(_("Adapter rank"), ADAPTER_RANKS, index=ADAPTER_RANKS.index(8), key="adapter_rank",
                             help=_("LoRA's r: each adapted layer learns a change of this rank. Higher: more "
                                    "trainable weights, closer to fine-tuning."))
    holding = sum(1 for w in table.adapter_widths if w > 0)
    adapter_stages = cols[1].number_input(_("Stages with adapters (the last ones)"), 1, holding, min(2, holding),
                                          key=f"adapter_stages_{backbone}")
    st.caption(_("LoRA rank {rank}: {stages}.").format(rank=rank, stages=md(advice.adapter_label(backbone,
                                                                                                  int(adapter_stages)))))
    trainable, every = advice.adapter_parameters(backbone, int(rank), int(adapter_stages), num_outputs)
else:
    trainable, every = advice.trainable_parameters(backbone, total, num_outputs)
time_slot = st.empty()  # filled once the advanced settings below are known
st.metric(_("Trainable parameters"), number(trainable), help=_("The weights that will change while training."))
st.caption(_("{share} of the network's {total} parameters will be trained.").format(
    share=percent(trainable / every, 2), total=number(every)))

DEFAULT = config_defaults()
if rules is not None:  # the class's caps, within the engine's own ranges
    RANGES = {**RANGES, "epochs": rules.allowed_range("epochs"), "image_size": rules.allowed_range("image_size")}
    DEFAULT["epochs"] = min(DEFAULT["epochs"], int(RANGES["epochs"][1]))
fixed = backbones.info(backbone).fixed_size
if rules is not None and not rules.advanced:  # the teacher keeps these to the defaults (and the class's caps)
    epochs, batch_size, optimizer, augment, device = (DEFAULT[k] for k in ("epochs", "batch_size", "optimizer",
                                                                           "augment", "device"))
    image_size = min(backbones.info(backbone).input_size, int(RANGES["image_size"][1]))
    own_lr, lr, patience, val_split, seed, two_stage = False, 1e-3, DEFAULT["early_stopping"], DEFAULT["val_split"], \
        DEFAULT["seed"], False
if rules is None or rules.advanced:
    with st.expander(_("Advanced settings (the defaults work well)")):
        cols = st.columns(3)
        epochs = cols[0].number_input(_("Epochs (passes over the data)"), *map(int, RANGES["epochs"]), DEFAULT["epochs"],
                                      key="epochs")
        batch_size = cols[1].selectbox(_("Batch size"), BATCH_SIZES, index=BATCH_SIZES.index(DEFAULT["batch_size"]))
        optimizer = cols[2].selectbox(_("Optimizer"), OPTIMIZERS, index=OPTIMIZERS.index(DEFAULT["optimizer"]))
        augment = cols[0].selectbox(_("Augmentation"), AUGMENTATIONS, index=AUGMENTATIONS.index(DEFAULT["augment"]),
                                    help=AUGMENT_HELP)
        smallest = max(int(RANGES["image_size"][0]), backbones.info(backbone).min_input)
        image_size = cols[1].number_input(_("Image size (pixels)"), smallest, int(RANGES["image_size"][1]),
                                          backbones.info(backbone).input_size, disabled=fixed,
                                          help=_("Smaller is faster; the backbone was trained at 224."), key="image_size")
        device = cols[2].selectbox(_("Device"), DEVICES, index=DEVICES.index(DEFAULT["device"]))
        own_lr = cols[0].checkbox(_("Set the learning rate myself"),
                                  help=_("Default: chosen automatically from how much of the network learns."))
        lr = cols[1].number_input(_("Learning rate"), *RANGES["lr"], 1e-3, format="%.6f", disabled=not own_lr)
        patience = cols[2].number_input(_("Early stopping patience (0 = off)"), *map(int, RANGES["early_stopping"]),
                                        DEFAULT["early_stopping"])
        val_split = cols[0].slider(_("Validation share"), *RANGES["val_split"], DEFAULT["val_split"],
                                   disabled=bool(report.splits))
        seed = cols[1].number_input(_("Random seed"), *map(int, RANGES["seed"]), DEFAULT["seed"])
        two_stage = cols[2].checkbox(_("Two stages: first only the new last layer, then the chosen stages too, "
                                       "with smaller steps"), help=_("The new last layer is the *head*; this is "
                                                                     "'two-stage fine-tuning'."))
all_gpus = False
if len(manager.gpus) > 1 and device in ("auto", "cuda"):
    all_gpus = st.checkbox(_("Use all {count} GPUs for this run").format(count=len(manager.gpus)), key="all_gpus",
                           help=_("Starts one training process per GPU (torchrun); the run waits until every GPU is "
                                  "free."))
try:
    st.caption(_("Training runs on: **{device}**").format(device=devices.describe(device)))
    config = TrainConfig(data=dataset["path"], task=report.task, target=report.target, backbone=backbone,
                         freeze_depth=FREEZE_ALL if strategy != FINE_TUNE else depth, epochs=int(epochs),
                         strategy="adapters" if strategy == ADAPTERS else "freeze", adapter_rank=int(rank),
                         adapter_stages=int(adapter_stages),
                         lr=float(lr) if own_lr else None, batch_size=int(batch_size), optimizer=optimizer,
                         augment=augment, image_size=None if fixed else int(image_size), val_split=float(val_split),
                         seed=int(seed), device=device, weights=weights, early_stopping=int(patience),
                         two_stage=two_stage, data_name=dataset["name"])
except (ConfigError, ValueError) as error:
    show_error(str(error))
    st.stop()


def queue_sentence(manager, device: str) -> str:
    """The runs a new run waits for on this server, and for about how long (from how long runs took here)."""
    queued = len(manager.active())
    if not queued:
        return ""
    ahead = ngettext(" {count} run is running or queued before it on this server", " {count} runs are running or "
                     "queued before it on this server", queued).format(count=queued)
    before = waiting.before_a_new_run(manager, device)
    if before is None:
        return ahead + _("; none has finished here yet, so how long they take is not known.")
    return ahead + _(": about {time} more before it starts.").format(time=duration(before[0]))


def time_estimate() -> None:
    """About how long these settings take here; measured in the background the first time (then a rerun)."""
    crop = backbones.preprocessing(backbone, config.image_size).crop_size
    speed = estimate.ready(devices.resolve(device).device.type, backbone, crop)
    if speed is None:
        st.caption(_("Measuring this computer's speed to estimate the training time..."))
        return
    if pending:
        st.rerun()  # measured: draw the page once more, without the timer
    num_val = sum(report.splits.get("val", {}).values()) if report.splits else round(num_images * val_split)

    start = manager.start_delay_s(device, all_gpus)  # a training process still importing, or none waiting

    def take(frozen: int) -> str:
        fast, slow = estimate.likely_range(estimate.for_settings(backbone, config.image_size, frozen, augment,
                                                                 num_images - num_val, num_val, int(epochs), speed,
                                                                 config.augmented_views), start_s=start)
        return _("{low} to {high}").format(low=duration(fast), high=duration(slow))
    # adapters: the stages before the first adapter run once per image, the adapted ones every epoch
    frozen = advice.adapter_prefix(backbone, int(adapter_stages)) if strategy == ADAPTERS else depth
    others = {d: advice.freeze_words(backbone, d) for d in (total, max(total - 2, 0), 0)}
    busy = estimate.busy_factor()
    load = _(" It is busy now, so about {factor}x slower than when quiet.").format(factor=number(busy, 1)) \
        if busy > 1.2 else ""
    load += _(" That includes about {time} for a training process to get ready.").format(time=duration(start)) \
        if start >= 1 else ""
    wait = queue_sentence(manager, device)
    compared = _(", ").join(_("{strategy} about {time}").format(strategy=name, time=take(d))
                            for d, name in others.items() if d != frozen)
    st.caption(_("**Time on this computer: {time}** with these settings (for all {epochs} epochs; early stopping may "
                 "end sooner).{load}{wait} For comparison: {others}.").format(
        time=take(frozen), epochs=int(epochs), load=load, wait=wait, others=compared))


pending = estimate.ready(devices.resolve(device).device.type, backbone,
                         backbones.preprocessing(backbone, config.image_size).crop_size) is None
with time_slot.container():
    st.fragment(run_every=2.0 if pending else None)(in_language(time_estimate))()

if st.button(_("Start training"), type="primary", key="start"):
    job = manager.submit(config, ws.runs, all_gpus=all_gpus)
    remember("job", job.id)  # the live view puts it back within a second should a rerun lose it (ui/progress.py)
    st.rerun()
