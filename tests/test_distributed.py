"""torchrun + DDP on CPU (gloo): synchronised gradients through the partial forward, N processes with batch B
train like one with batch N*B (also as two single-process "nodes" on the loopback address), rank 0 alone
writes the run, and a failing process fails the run with a sentence instead of hanging."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TRAIN = ["--image-size", "64", "--epochs", "2", "--early-stopping", "0", "--seed", "3"]


def _env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {"TRANSFERLAB_DDP_TIMEOUT_S": "60", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=240)


def _standalone(n: int) -> list[str]:
    return TORCHRUN + ["--standalone", f"--nproc_per_node={n}"]


def test_one_step_through_ddp_leaves_every_rank_with_identical_parameters(tmp_path):
    done = _run(_standalone(2) + ["-m", "tests.ddp_worker", "step", str(tmp_path)], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    ddp = [torch.load(tmp_path / f"ddp-rank{r}.pt") for r in (0, 1)]
    plain = [torch.load(tmp_path / f"plain-rank{r}.pt") for r in (0, 1)]
    trained = [k for k in ddp[0] if k.startswith(("stages.11", "stages.12", "head")) ]
    assert all(torch.equal(ddp[0][k], ddp[1][k]) for k in ddp[0])
    assert any(not torch.equal(plain[0][k], plain[1][k]) for k in trained)  # without the wrapper they drift


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_loopback_nodes_train_like_one_process_with_the_same_global_batch(shapes_folder, tmp_path):
    single = _run([sys.executable, "-m", "core", "train", "--data", str(shapes_folder), "--batch-size", "8",
                   "--out", str(tmp_path / "one")] + TRAIN, tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    port = _free_port()
    nodes = [subprocess.Popen(TORCHRUN + ["--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
                                          f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=t", "-m", "core", "train",
                                          "--data", str(shapes_folder), "--batch-size", "4",
                                          "--out", str(tmp_path / "two")] + TRAIN,
                              cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [node.communicate(timeout=240) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), [err[-2000:] for _, err in outputs]
    (one,), (two,) = list((tmp_path / "one").iterdir()), list((tmp_path / "two").iterdir())  # rank 0 alone writes
    first, second = _metrics(one), _metrics(two)
    assert [e.get("world_size") for e in second if e["event"] == "epoch_end"] == [2, 2]
    end_one, end_two = first[-1], second[-1]
    assert end_one["event"] == end_two["event"] == "run_finished"
    assert abs(end_one["val_accuracy"] - end_two["val_accuracy"]) <= 0.02
    losses = [[e["val_loss"] for e in m if e["event"] == "epoch_end"] for m in (first, second)]
    # the same batches and averaged gradients; only the head's dropout masks and the last batch's padding differ
    assert all(abs(a - b) < 0.1 for a, b in zip(*losses)), losses


def test_a_failing_process_fails_the_run_with_its_rank_and_error(shapes_folder, tmp_path):
    done = _run(_standalone(2) + ["-m", "tests.ddp_worker", "fail", "train", "--data", str(shapes_folder),
                                  "--out", str(tmp_path / "runs")] + TRAIN, tmp_path)
    assert done.returncode != 0
    assert "process 1 of 2 failed: ValueError: disk on fire" in done.stderr
    (run_dir,) = list((tmp_path / "runs").iterdir())
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed", status
    assert "process 1 of 2 failed: ValueError: disk on fire" in status["message"]  # rank 0 quotes rank 1


def test_the_apps_all_gpu_launch_trains_one_run_folder_with_every_process(shapes_folder, tmp_path):
    """The command the job manager uses for "Use all N GPUs" (here 2 CPU processes): one run, global metrics."""
    from core.runs import folder as runs
    from core.runs.jobs import Job, JobManager
    from core.training.config import TrainConfig

    config = TrainConfig(data=str(shapes_folder), image_size=64, epochs=2, early_stopping=0, batch_size=4)
    run_dir = runs.create(tmp_path / "runs", config).path
    job = Job(run_dir.name, run_dir, config, ("cuda:0", "cuda:1"), owner="a workspace")
    command = JobManager(tmp_path / "home", gpu_count=2).command(job)
    assert command[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    launch = command[:3] + ["--standalone", "--nproc_per_node=2"] + command[5:]
    done = _run(launch, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert runs.Run(run_dir).status()["state"] == "finished"
    epochs = [r for r in _metrics(run_dir) if r["event"] == "epoch_end"]
    assert [e["world_size"] for e in epochs] == [2, 2]
