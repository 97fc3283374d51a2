"""How long will these settings take on this computer? Shown before Start, next to the freeze-depth choice.

From each stage's compute (counted once per backbone and image size with PyTorch's FlopCounterMode) and this
device's speed (measured once, about 3 s on 2 CPU cores, kept on disk under $TRANSFERLAB_HOME). An estimate:
it says "about", and counts every planned epoch (early stopping may end sooner).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from core import paths
from core.files import read_json, write_json
from core.models import backbones
from core.training import devices
from core.training.config import ConfigError

SPEED_FILE = "device-speed.json"
# At the size and a batch like real runs': small inputs use a CPU's cores less well (128 px at batch 4 measured
# 1.7x slower per FLOP than 224 px at batch 32 here, and the estimates came out twice too long).
CALIBRATION_BACKBONE, CALIBRATION_SIZE, CALIBRATION_BATCH = backbones.BUNDLED, 224, 8
DECODE_S_PER_IMAGE = 0.004  # reading and resizing one photo once per run, on one core
EPOCH_OVERHEAD_S = 0.2  # evaluation bookkeeping, events
# Handing the run to the waiting training process (core.runs.standby), reading its settings, building the model:
# measured 0.2-0.4 s on 2 CPU cores. A process that is not waiting yet adds core.training.starts' measured start.
PROCESS_START_S = 0.3
_COUNTED: set[tuple[str, int]] = set()  # (backbone, crop size) whose stage FLOPs are known in this process
_PENDING: set[tuple[str, str, int]] = set()
_LOCK = threading.Lock()
_COUNTING = threading.Lock()


@dataclass(frozen=True)
class DeviceSpeed:
    forward_flops_per_s: float  # inference through frozen stages
    train_flops_per_s: float  # forward-FLOPs per second of a training step (forward and backward)


@lru_cache(maxsize=64)
def stage_flops(backbone: str, crop_size: int) -> tuple[float, ...]:
    """FLOPs of one image through each stage, then the head, at this input size."""
    with _COUNTING:  # torch's FLOP counter keeps global state (fx annotations): two threads at once broke it
        flops = _count_flops(backbone, crop_size)
    _COUNTED.add((backbone, crop_size))
    return flops


def _count_flops(backbone: str, crop_size: int) -> tuple[float, ...]:
    model = backbones.skeleton(backbone, 2).eval()  # meta tensors: shapes only, so counting costs no memory
    x, flops = torch.zeros(1, 3, crop_size, crop_size, device="meta"), []
    with torch.no_grad():
        for module in [*model.stages, model.head]:
            with FlopCounterMode(display=False) as counter:
                x = module(x)
            flops.append(float(counter.get_total_flops()))
    return tuple(flops)


def ready(device: str, backbone: str, crop_size: int) -> DeviceSpeed | None:
    """The device's speed when it and the backbone's compute are known; else None, and they are worked out in a
    background thread (seconds on a busy machine), so that a page view never waits for them."""
    speed = _stored_speeds().get(_speed_key(device))
    if isinstance(speed, dict) and (backbone, crop_size) in _COUNTED:
        return DeviceSpeed(**speed)
    with _LOCK:
        if (device, backbone, crop_size) in _PENDING:
            return None
        _PENDING.add((device, backbone, crop_size))

    def work() -> None:
        try:
            device_speed(device)
            stage_flops(backbone, crop_size)
        except Exception:  # noqa: BLE001 - torch tracing elsewhere in this process (an ONNX export) shares the
            pass  # FLOP counter's global state and can break a count; the page's next view counts again
        finally:
            with _LOCK:
                _PENDING.discard((device, backbone, crop_size))
    threading.Thread(target=work, name="transferlab-speed", daemon=True).start()
    return None


def device_speed(device: str = "cpu") -> DeviceSpeed:
    """Measured once per device, torch version and thread count; kept on disk, so a restart does not measure."""
    known = _stored_speeds()
    if not isinstance(known.get(_speed_key(device)), dict):
        known[_speed_key(device)] = _measure(torch.device(device)).__dict__
        write_json(paths.home() / SPEED_FILE, known)
    return DeviceSpeed(**known[_speed_key(device)])


def _speed_key(device: str) -> str:
    layout = "channels_last" if _channels_last(device) else "contiguous"
    return f"{device}|{torch.__version__}|{torch.get_num_threads()}|{layout}|{CALIBRATION_SIZE}x{CALIBRATION_BATCH}"


def _channels_last(device: str) -> bool:
    try:
        return devices.resolve(device).channels_last
    except ConfigError:  # a device this computer lacks: never measured
        return False


def _stored_speeds() -> dict:
    known = read_json(paths.home() / SPEED_FILE, {})
    return known if isinstance(known, dict) else {}


def _measure(device: torch.device) -> DeviceSpeed:
    """Time a few training steps of the bundled backbone, and a few forward passes without a graph (frozen
    stages); about two seconds on a 2-core CPU, once per device."""
    layout = torch.channels_last if _channels_last(device.type) else torch.contiguous_format  # as training runs
    model = backbones.build(CALIBRATION_BACKBONE, 2, pretrained=False).to(device, memory_format=layout).train()
    x = torch.randn(CALIBRATION_BATCH, 3, CALIBRATION_SIZE, CALIBRATION_SIZE, device=device).contiguous(
        memory_format=layout)
    flops = sum(stage_flops(CALIBRATION_BACKBONE, CALIBRATION_SIZE)) * CALIBRATION_BATCH
    train = _best_time(lambda: model(x).sum().backward(), device)
    model.eval()
    with torch.inference_mode():
        forward = _best_time(lambda: model(x), device)
    return DeviceSpeed(flops / forward, flops / train)


def _best_time(step, device: torch.device, repeats: int = 3) -> float:
    step()  # warm-up: the first call chooses kernels and allocates
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return max(min(times), 1e-6)


def seconds(backbone: str, crop_size: int, frozen: int, augmented: bool, num_train: int, num_val: int,
            epochs: int, speed: DeviceSpeed, views: int = 0) -> float:
    """Estimated seconds for a run: one-off work (decoding, cached features) plus the epochs. With `views`
    augmented views kept (core.training.augmented_views), the frozen prefix runs in the first `views` epochs only."""
    flops = stage_flops(backbone, crop_size)
    prefix, rest = sum(flops[:frozen]), sum(flops[frozen:])
    fwd, train = speed.forward_flops_per_s, speed.train_flops_per_s
    once = (num_train + num_val) * DECODE_S_PER_IMAGE + num_val * prefix / fwd  # validation features: cached
    if augmented and 0 < frozen and views:
        once += min(views, epochs) * num_train * prefix / fwd
        per_epoch = num_train * rest / train
    elif augmented or frozen == 0:  # the frozen prefix runs on every augmented image, every epoch
        per_epoch = num_train * (prefix / fwd + rest / train)
    else:  # features computed once; only the trainable rest runs each epoch
        once += num_train * prefix / fwd
        per_epoch = num_train * rest / train
    per_epoch += num_val * rest / fwd + EPOCH_OVERHEAD_S
    if frozen < len(flops) - 1:  # after training: the trained stages once more over every image (trust, unknown
        once += num_train * prefix / fwd + (num_train + num_val) * rest / fwd  # inputs); frozen output for val cached
    return PROCESS_START_S + once + epochs * per_epoch


def for_settings(backbone: str, image_size: int | None, frozen: int, augment: str, num_train: int, num_val: int,
                 epochs: int, speed: DeviceSpeed, views: int = 0) -> float:
    """`seconds` for the Train page's choices ("auto" augmentation resolved as training will resolve it)."""
    total = len(stage_flops(backbone, backbones.preprocessing(backbone, image_size).crop_size)) - 1
    augmented = augment not in ("none",) and not (augment == "auto" and frozen >= total)
    crop = backbones.preprocessing(backbone, image_size).crop_size
    return seconds(backbone, crop, frozen, augmented, num_train, num_val, epochs, speed, views)


def busy_factor() -> float:
    """How many times slower a run goes now than on the quiet machine its speed was measured on: the processes
    already running share the cores with it (1.0 when the machine is quiet). Estimates came out 3-5x low on a
    loaded 2-core server before this."""
    try:
        running = os.getloadavg()[0]
    except OSError:  # no load average on this system: assume quiet
        return 1.0
    return max(1.0, (running + 1.0) / (os.cpu_count() or 1))


def likely_range(estimate_s: float, factor: float | None = None, start_s: float = 0.0) -> tuple[float, float]:
    """(fast, slow) seconds around an estimate made for a quiet machine, plus `start_s` before training can begin
    (a training process still importing: measured, so already at today's load). Measured runs spread about ±30%
    around the model even when quiet. The load only moves the slow end: the load average counts every busy process,
    but Linux shares the cores between sessions first, so a run beside busy programs often lost far less than the
    load suggested (bench/estimate_accuracy.py: 1.0-1.4x where the load said 1.5-1.9x)."""
    factor = busy_factor() if factor is None else factor
    return 0.75 * (start_s + estimate_s), start_s + estimate_s * 1.3 * factor
