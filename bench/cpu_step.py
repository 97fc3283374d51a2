"""One full fine-tuning training step (forward, backward, AdamW) of the default backbone on the CPU: eager,
channels_last, and torch.compile; and the network's own time per image for partial fine-tuning (last 2
stages): the frozen prefix's forward, and the trainable tail's forward + backward, to set against the
measured epoch times in train_speed's partial-aug mode.

    python bench/cpu_step.py [--batch 16] [--size 224] [--steps 5] [--compile] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402, F401  (first: it makes OpenMP threads sleep while they wait, as in the app)

# isort: split
import torch  # noqa: E402

from core.models import backbones  # noqa: E402


def step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    step()  # warm-up (and, compiled, the compilation itself)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def partial_network_time(batch: int, size: int, steps: int) -> dict[str, float]:
    model = backbones.build(backbones.BUNDLED, 3, pretrained=False)
    frozen = len(model.stages) - 2
    model.stages[:frozen].eval().requires_grad_(False)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 3, (batch,))
    with torch.no_grad():
        model.run_stages(x, 0, frozen)
        started = time.perf_counter()
        for _ in range(steps):
            features = model.run_stages(x, 0, frozen)
        prefix = (time.perf_counter() - started) / steps / batch

    class Tail(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, f: torch.Tensor) -> torch.Tensor:
            return self.model.forward_from(f, frozen)

    tail = step_seconds(Tail(), features, y, steps) / batch
    return {"frozen_prefix_forward": round(prefix, 5), "trainable_tail_forward_backward_step": round(tail, 5)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.manual_seed(0)
    x, y = torch.randn(args.batch, 3, args.size, args.size), torch.randint(0, 3, (args.batch,))
    report = {"machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}", "load_average_before": os.getloadavg(),
              "backbone": backbones.BUNDLED, "batch": args.batch, "size": args.size, "seconds_per_step": {}}
    model = backbones.build(backbones.BUNDLED, 3, pretrained=False).train()
    report["seconds_per_step"]["eager"] = round(step_seconds(model, x, y, args.steps), 3)
    model = model.to(memory_format=torch.channels_last)
    report["seconds_per_step"]["channels_last"] = round(
        step_seconds(model, x.contiguous(memory_format=torch.channels_last), y, args.steps), 3)
    if args.compile:
        model = backbones.build(backbones.BUNDLED, 3, pretrained=False).train()
        started = time.perf_counter()
        compiled = torch.compile(model)
        report["seconds_per_step"]["compiled"] = round(step_seconds(compiled, x, y, args.steps), 3)
        report["compile_and_run_s"] = round(time.perf_counter() - started, 1)
    report["partial_network_s_per_image"] = partial_network_time(args.batch, args.size, args.steps)
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
