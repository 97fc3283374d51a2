"""Run by tests/test_distributed.py under torchrun (not a test module itself).

    torchrun ... -m tests.ddp_worker step OUT_DIR     one DDP step on different data per rank; saves parameters
    torchrun ... -m tests.ddp_worker fail ARGS...     `python -m core train ARGS...` with rank 1 failing mid-run
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from core.training import distributed


def one_step(out: Path) -> None:
    from core.models import backbones
    from core.training.loop import set_trainable

    distributed.init()
    torch.manual_seed(0)
    model = backbones.build("mobilenet_v3_small", 3, pretrained=False)
    set_trainable(model, 11)
    for through_ddp in (True, False):
        net = distributed.wrap(model, 11) if through_ddp else distributed.FromStage(model, 11)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
        torch.manual_seed(100 + distributed.rank())  # each rank its own batch, as its shard would be
        x = torch.randn(4, *model.run_stages(torch.zeros(1, 3, 64, 64), 0, 11).shape[1:])
        torch.nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 0])).backward()
        optimizer.step()
        name = "ddp" if through_ddp else "plain"
        # parameters: BatchNorm running statistics are re-broadcast from rank 0 at each forward instead
        torch.save(dict(model.named_parameters()), out / f"{name}-rank{distributed.rank()}.pt")
    distributed.teardown()


def fail_on_rank_one(argv: list[str]) -> int:
    from core.cli import main
    from core.training import loop

    if distributed.rank() == 1:
        def broken(*args, **kwargs):
            raise ValueError("disk on fire")
        loop.train_one_epoch = broken
    return main(argv)


if __name__ == "__main__":
    if sys.argv[1] == "step":
        one_step(Path(sys.argv[2]))
    else:
        sys.exit(fail_on_rank_one(sys.argv[2:]))
