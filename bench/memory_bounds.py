"""Peak memory of one hostile input on each path, on this checkout and on an older commit ("before").

    flock /tmp/transferlab-bench.lock python bench/memory_bounds.py [--before REF] [--junk-mb 200]

Trains a tiny run once (core.runs.pipeline.execute: the bundled EfficientNet-Lite0 at its 224 px input, the
sample shapes, one epoch), unpacks REF (default: the commit this work started from) with `git archive`, then runs
every measurement in a fresh process of each code tree:
- the service: `python -m core serve` on 127.0.0.1; after one normal photo (a 4000x3000 JPEG) its peak resident
  memory (VmHWM) is the baseline, then one POST of the image under test; reported: peak minus baseline;
- `python -m core predict --run RUN IMAGE`: the process's peak (VmHWM as it exits) minus that of the same command
  on the normal photo;
- the shared resize alone (Preprocessing.to_uint8 on an in-memory image, no loading guard in front of it);
- the labelling pool's intake: intake.add_uploads of a zip of six junk .bin members (JUNK_MB MiB each, ~50:1
  compressed, as in the report: a 46 MB zip that took a server from 720 MB to 1.9 GB) plus one photo.
Images: thin 4000x1 PNG (85 bytes), tall 1x4000 PNG, normal. Goal: nothing over 256 MiB above a normal photo.
VmHWM is read from each process itself: getrusage's maxrss of a child started with vfork includes its parent's.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_COMMIT = "fbac122"  # the commit before the bounded resize and the streaming intake
GOAL_MIB = 256
KINDS = ("thin", "tall", "normal")

TRAIN = """
import sys, threading
from pathlib import Path
from core.data import sample
from core.runs import folder as runs, pipeline as runner
from core.training.config import TrainConfig
from core.training.events import EventLog
config = TrainConfig(data=str(sample.SAMPLE_ZIP), epochs=1, early_stopping=0)
run_dir = runs.create(Path(sys.argv[1]), config).path
state = runner.execute(config, run_dir, EventLog(run_dir / "metrics.jsonl"), threading.Event(), Path(sys.argv[2]))
print(run_dir if state == "finished" else "failed: " + state)
"""
RESIZE = """
import sys
from PIL import Image
from core.data.preprocessing import Preprocessing
peak = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])
prep = Preprocessing(256, 224, (0, 0, 0), (1, 1, 1), 'bilinear')
prep.to_uint8(Image.new('RGB', (4000, 3000), 'red'))
before = peak()
prep.to_uint8(Image.new('RGB', tuple(int(v) for v in sys.argv[1].split('x')), 'red'))
print(peak() - before)
"""
AT_EXIT = """
import atexit, runpy, sys
peak = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])
atexit.register(lambda: print('VmHWM', peak(), flush=True))
sys.argv = ['core', *sys.argv[1:]]
runpy.run_module('core', run_name='__main__')
"""
INTAKE = """
import sys
from pathlib import Path
from core.data import intake
from core.data.store import DatasetStore
peak = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])
store = DatasetStore(Path(sys.argv[1]))
pool = intake.new_pool(store, 'pool', [])
data = Path(sys.argv[2]).read_bytes()  # as the Label page hands over a browser upload
before = peak()
result = intake.add_uploads(store, pool.dataset, pool.number, [('junk.zip', data)], None, Path(sys.argv[1]) / 'work')
print(peak() - before, result.added, len(result.skipped))
"""


def images(folder: Path) -> dict[str, Path]:
    from PIL import Image  # Pillow only: light, unlike torch

    made = {"thin": (4000, 1), "tall": (1, 4000)}
    out = {}
    for kind, size in made.items():
        out[kind] = folder / f"{kind}.png"
        Image.new("RGB", size, (200, 40, 90)).save(out[kind])
    out["normal"] = folder / "normal.jpg"
    gradient = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    gradient.save(out["normal"], quality=90)
    return out


def junk_zip(path: Path, member_mib: int) -> Path:
    """Written a MiB at a time: this process stays small (a child's peak must not include ours)."""
    import numpy as np

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in "abcdef":
            with archive.open(f"junk/{name}.bin", "w", force_zip64=True) as member:
                for _ in range(member_mib):
                    member.write((rng.random(1 << 20) < 0.01).astype(np.uint8).tobytes())
        buffer = io.BytesIO()
        from PIL import Image

        Image.new("RGB", (64, 48), (9, 90, 200)).save(buffer, "JPEG")
        archive.writestr("real/photo.jpg", buffer.getvalue())
    return path


def cli_peak(arguments: list[str], cwd: Path, env: dict) -> tuple[int, str]:
    """`python -m core ARGUMENTS` to the end: its peak resident memory in MiB (VmHWM, read as it exits), output."""
    done = subprocess.run([sys.executable, "-c", AT_EXIT, *arguments], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    lines = done.stdout.splitlines()
    peak = next(int(line.split()[1]) for line in lines if line.startswith("VmHWM "))
    return peak // 1024, "\n".join(line for line in lines if not line.startswith("VmHWM "))


def vm_hwm_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM")).split()[1]) // 1024


def post(url: str, path: Path) -> int:
    boundary = "transferlab-bench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/predict", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def service(tree: Path, run_dir: Path, image: Path, normal: Path, env: dict, work: Path) -> dict:
    """One fresh service: baseline after a normal photo, then the image under test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = work / f"serve-{tree.name}-{image.stem}.out"
    command = [sys.executable, "-m", "core", "serve", "--run", str(run_dir), "--port", str(port),
               "--log-db", f"sqlite:///{work / f'log-{tree.name}-{image.stem}.sqlite'}"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        post(url, normal)
        baseline = vm_hwm_mib(process.pid)
        status = post(url, image)
        peak = vm_hwm_mib(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    return {"status": status, "peak_mib": peak, "baseline_mib": baseline, "above_normal_mib": peak - baseline}


def measure(tree: Path, run_dir: Path, pictures: dict[str, Path], junk: Path, env: dict, work: Path) -> dict:
    result: dict = {"service": {}, "predict_cli": {}, "resize": {}}
    for kind in KINDS:
        result["service"][kind] = service(tree, run_dir, pictures[kind], pictures["normal"], env, work)
    predict = ["predict", "--run", str(run_dir)]
    normal_peak, _ = cli_peak([*predict, str(pictures["normal"])], tree, env)
    for kind in KINDS:
        peak, output = cli_peak([*predict, str(pictures[kind])], tree, env)
        answer = json.loads(next((line for line in output.splitlines() if line.startswith("{")), "{}"))
        result["predict_cli"][kind] = {"peak_mib": peak, "above_normal_mib": peak - normal_peak,
                                       "answer": "error" if "error" in answer else "top_k" if answer else "none"}
    for kind, size in (("thin", "4000x1"), ("tall", "1x4000")):
        done = subprocess.run([sys.executable, "-c", RESIZE, size], cwd=tree, env=env, capture_output=True, text=True)
        result["resize"][kind] = {"above_normal_mib": int(done.stdout.split()[0]) // 1024} if done.returncode == 0 \
            else {"error": done.stderr.strip().splitlines()[-1]}
    store = work / f"store-{tree.name}"
    done = subprocess.run([sys.executable, "-c", INTAKE, str(store), str(junk)], cwd=tree, env=env,
                          capture_output=True, text=True)
    grown, added, skipped = done.stdout.split() if done.returncode == 0 else ("-1", "0", "0")
    result["intake_junk_zip"] = {"above_before_mib": int(grown) // 1024, "images_added": int(added),
                                 "skipped": int(skipped), "error": done.stderr.strip()[-300:] if done.returncode else None}
    return result


def worst(result: dict) -> int:
    values = [v["above_normal_mib"] for path in ("service", "predict_cli", "resize") for v in result[path].values()
              if "above_normal_mib" in v]
    return max(values + [result["intake_junk_zip"]["above_before_mib"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BASE_COMMIT, help="the commit to compare with (default: %(default)s)")
    parser.add_argument("--junk-mb", type=int, default=200, help="MiB per junk member of the intake zip")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = os.environ | {"TRANSFERLAB_HOME": str(work / "home"), "TRANSFERLAB_OFFLINE": "1",
                            "TRANSFERLAB_WORKSPACE_QUOTA_MB": "0"}
        before = work / "before"
        before.mkdir()
        archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        trained = subprocess.run([sys.executable, "-c", TRAIN, str(work / "runs"), str(work / "cache")], cwd=ROOT,
                                 env=env, capture_output=True, text=True)
        run_dir = Path(trained.stdout.strip().splitlines()[-1]) if trained.returncode == 0 else None
        if run_dir is None or not run_dir.is_dir():
            raise SystemExit(f"training failed: {trained.stderr[-2000:]}")
        pictures = images(work)
        junk = junk_zip(work / "junk.zip", args.junk_mb)
        load_before = os.getloadavg()
        results = {name: measure(tree, run_dir, pictures, junk, env, work) for name, tree in
                   (("before", before), ("after", ROOT))}
        load_after = os.getloadavg()
        junk_size = junk.stat().st_size
    result = {
        "machine": f"{os.cpu_count()} CPU threads, {platform.processor() or platform.machine()}, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB",
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "before": args.before, "after": "this checkout",
        "run": "efficientnet_lite0, 224 px crop (resize 256), sample shapes, 1 epoch",
        "images": {"thin": "4000x1 PNG", "tall": "1x4000 PNG", "normal": "4000x3000 JPEG"},
        "junk_zip": {"members": f"6 x {args.junk_mb} MiB .bin + 1 photo", "zip_mib": round(junk_size / 2**20, 1)},
        **results,
        "worst_above_normal_mib": {name: worst(r) for name, r in results.items()},
        "goal_under_256_mib_after": worst(results["after"]) < GOAL_MIB,
    }
    text = json.dumps(result, indent=2)
    print(text)
    out = ROOT / "bench" / "results" / f"memory_bounds-{os.cpu_count()}core-cpu.json"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
