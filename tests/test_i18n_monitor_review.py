"""The Monitor and Review pages read in Chinese with ?lang=zh-CN: headings, metrics, verdicts, chart titles and the
audit's sentences, with the user's class names as given (AppTest, no browser)."""
from __future__ import annotations

import json
import random
import shutil
import time
import uuid
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import paths
from core.files import write_json
from core.serving.predlog import PredictionLog, default_url

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def chinese_page(key: str, page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["ws"] = key
    at.query_params["lang"] = "zh-CN"
    at.switch_page(page)
    return at.run()


def test_monitor_and_review_pages_in_chinese(trained_run, shapes_folder):
    key = paths.new_workspace_key()
    root = paths.home() / "workspaces" / key
    run_dir = root / "runs" / trained_run.name
    shutil.copytree(trained_run, run_dir)
    write_json(root / "workspace.json", {"dataset": {"path": str(shapes_folder), "name": "shapes"}})
    rng, now = random.Random(0), time.time()
    PredictionLog(default_url(root, run_dir.name)).write([
        {"id": uuid.uuid4().hex, "time": now - i, "model": run_dir.name, "content_hash": f"{i:064x}", "top_k": [],
         "label": rng.choice(["circle", "square", "triangle"]), "confidence": rng.uniform(0.5, 1.0),
         "unsure": i % 5 == 0, "unknown": False, "latency_ms": 5.0 + i, "ood_score": rng.uniform(0.0, 1.0)}
        for i in range(40)])

    monitor = chinese_page(key, "views/monitor.py")
    assert not monitor.exception, [e.value for e in monitor.exception]
    assert [t.value for t in monitor.title] == ["6. 监控"]
    headings = [h.value for h in monitor.subheader]
    assert "给出的类别，与训练数据对比" in headings and "发来的图片还像训练集图片吗？" in headings, headings
    metrics = {m.label: m.value for m in monitor.metric}
    assert metrics["已回答的图片"] == "40" and "反馈上的准确率" in metrics and "Images answered" not in metrics
    notes = " ".join(n.value for n in list(monitor.info) + list(monitor.warning))
    assert "**置信度" in notes and "Confidence" not in notes and "Stable" not in notes
    titles = [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in monitor.get("plotly_chart")]
    assert "预测的类别，与训练数据对比" in titles and any(t.startswith("每") for t in titles), titles

    review = chinese_page(key, "views/review.py")
    review.button(key="run_audit").click().run()
    assert not review.exception, [e.value for e in review.exception]
    assert [t.value for t in review.title] == ["检查你的标注"]
    assert any(h.value.startswith("可能标错的类别") for h in review.subheader)
    said = [m.value for m in review.markdown] + [c.value for c in review.caption] + [s.value for s in review.success]
    assert any("从没见过" in text for text in said) and not any("never saw" in text for text in said)
