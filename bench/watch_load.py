"""Does watching slow training? Epochs per minute of one run with 0 and then N browser tabs on its progress view.

    .venv/bin/python bench/watch_load.py [--tabs 5] [--window 45]

Starts `streamlit run app.py` on 127.0.0.1 with a fresh TRANSFERLAB_HOME, starts a fine-tuning run on the sample
dataset from a real browser (Playwright + Debian's /usr/bin/chromium, headless), then counts the run's epoch_end
events over a window unwatched, with N tabs open on the run's page, and unwatched again; it also times page loads
while the run is watched. Prints JSON and saves it to bench/results/watch_load-<cores>core-<device>.json.
Goal (issue 7): watched >= 0.7x unwatched, a page load under 3 s while watched.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-renderer-backgrounding",
                 "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
PROGRESS = "[data-testid='stProgress']"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {"TRANSFERLAB_HOME": str(home), "TRANSFERLAB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                               str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return server, url
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("streamlit did not start")


def start_run(page, url: str) -> str:
    """Sample dataset, the bundled backbone fine-tuned whole at 64 px without augmentation: epochs of a few
    seconds of real work, so a slowdown shows within a minute. Many epochs, no early stopping."""
    page.goto(url)
    page.wait_for_selector(IDLE)
    page.get_by_role("button", name="Use the sample dataset").click()
    page.get_by_text("ready").first.wait_for()
    page.get_by_test_id("stSidebarNav").get_by_text("2. Train").click()
    page.get_by_text("Trainable parameters").wait_for()
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("Home")  # freeze depth 0: every stage trains
    page.wait_for_selector(IDLE)
    page.get_by_text("Advanced settings").click()
    page.get_by_test_id("stSelectbox").filter(has_text="Augmentation").locator("input").click()
    page.keyboard.type("none")
    page.keyboard.press("Enter")
    page.wait_for_selector(IDLE)
    for label, value in (("Epochs (passes over the data)", "1000"), ("Image size (pixels)", "64"),
                         ("Early stopping patience (0 = off)", "0")):
        box = page.get_by_role("spinbutton", name=label)
        box.fill(value)
        box.press("Enter")
        page.wait_for_selector(IDLE)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url("**job=*")
    return page.url


def epoch_times(home: Path) -> list[float]:
    times = []
    for log in home.glob("workspaces/*/runs/*/metrics.jsonl"):
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "epoch_end":
                times.append(record["time"])
    return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def training_pid(home: Path) -> int:
    status = next(home.glob("workspaces/*/runs/*/status.json"))
    return int(json.loads(status.read_text())["pid"])


def epochs_per_minute(home: Path, window: float, pids: dict[str, int]) -> tuple[float, dict[str, float]]:
    """Epochs per minute over the window, and the share of a core each named process used meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.time()
    time.sleep(window)
    end = time.time()
    cores = {name: round((cpu_seconds(pid) - before[name]) / (end - start), 3) for name, pid in pids.items()}
    return 60 * sum(start <= t < end for t in epoch_times(home)) / (end - start), cores


def timed_load(context, job_url: str):
    page = context.new_page()
    started = time.perf_counter()
    page.goto(job_url)
    page.wait_for_selector(PROGRESS, timeout=180_000)
    return page, round(time.perf_counter() - started, 2)


def profile(py_spy: str, pid: int, seconds: float) -> subprocess.Popen:
    """Sample the web server's Python stacks (raw collapsed format, for a flame graph) to /tmp/watch-load-server.txt."""
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50",
                             "--format", "raw", "--output", "/tmp/watch-load-server.txt", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tabs", type=int, default=5)
    parser.add_argument("--window", type=float, default=45.0)
    parser.add_argument("--py-spy", help="path to a py-spy binary: profile the web server while it is watched")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="watch-load-"))
    server, url = start_server(home)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1300, "height": 900})
            starter = context.new_page()
            job_url = start_run(starter, url)
            starter.close()
            for _ in range(600):  # the training process is up and past its first epoch
                if len(epoch_times(home)) >= 2:
                    break
                time.sleep(0.5)
            pids = {"web_server": server.pid, "training_process": training_pid(home)}
            unwatched, cores_unwatched = epochs_per_minute(home, args.window, pids)
            tabs, loads = [], []
            for _ in range(args.tabs):
                page, seconds = timed_load(context, job_url)
                tabs.append(page)
                loads.append(seconds)
            spy = profile(args.py_spy, server.pid, args.window) if args.py_spy else None
            watched, cores_watched = epochs_per_minute(home, args.window, pids)
            if spy is not None:
                spy.wait(60)
            extra, load_while_watched = timed_load(context, job_url)
            extra.close()
            for page in tabs:
                page.close()
            unwatched_after, _ = epochs_per_minute(home, args.window, pids)
            browser.close()
    finally:
        for stop in (home / "workspaces").glob("*/runs/*/config.json"):
            (stop.parent / "STOP").touch()  # the training process outlives the server by design: end it
        server.terminate()
        server.wait(30)
    baseline = (unwatched + unwatched_after) / 2
    result = {
        "bench": "watch_load", "tabs": args.tabs, "window_s": args.window,
        "epochs_per_min_unwatched": round(unwatched, 2), "epochs_per_min_unwatched_after": round(unwatched_after, 2),
        "epochs_per_min_watched": round(watched, 2),
        "watched_over_unwatched": round(watched / baseline, 3) if baseline else None,
        "cores_used_unwatched": cores_unwatched, "cores_used_watched": cores_watched,
        "page_load_s_while_opening_tabs": loads, "page_load_s_while_watched": load_while_watched,
        "goal": "watched >= 0.7x unwatched; page load < 3 s while watched",
        "workload": "sample dataset (96 train / 24 val), efficientnet_lite0 fine-tuned whole at 64 px, no augmentation",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg(),
                    "note": "the headless browser's tabs run on the same cores as the server and the training"},
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / f"watch_load-{os.cpu_count()}core-cpu.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
