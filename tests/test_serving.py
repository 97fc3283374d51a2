"""The REST service in-process (FastAPI TestClient): each endpoint, each bad input, the API key, the log rows."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.cli import main as cli_main
from core.serving.keep import kept_images_for_review
from core.serving.predlog import PredictionLog
from core.serving.service import create_app
from tests.conftest import LOG_BACKENDS, new_log_url

MAX_FILE_BYTES = 300_000


def image_bytes(kind: str = "JPEG", size=(96, 80), colour=(30, 160, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, kind)
    return buffer.getvalue()


def bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A real PNG whose header claims 3.6 gigapixels (a decompression bomb) around a tiny body."""
    data = bytearray(image_bytes("PNG", size=(8, 8)))
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    return bytes(data)


@pytest.fixture(scope="module", params=LOG_BACKENDS)
def log_url(request, tmp_path_factory) -> str:
    """The service's log, on SQLite and on PostgreSQL: every test of what it logs runs on both."""
    return new_log_url(request.param, tmp_path_factory.mktemp("log"), request)


@pytest.fixture(scope="module")
def client(trained_run, log_url):
    app = create_app(trained_run, log_url=log_url, max_batch=8, max_file_bytes=MAX_FILE_BYTES)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def plain_client(trained_run, tmp_path_factory):
    """For what does not depend on the log's database (limits, errors, docs): SQLite only."""
    url = f"sqlite:///{tmp_path_factory.mktemp('plain-log') / 'predictions.sqlite'}"
    app = create_app(trained_run, log_url=url, max_batch=8, max_file_bytes=MAX_FILE_BYTES)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def shape_file(shapes_folder: Path, label: str) -> tuple[str, bytes, str]:
    path = sorted((shapes_folder / label).glob("*.jpg"))[0]
    return path.name, path.read_bytes(), "image/jpeg"


def test_predict_answers_each_image_and_logs_one_row_each(client, shapes_folder, log_url, trained_run):
    files = [("file", shape_file(shapes_folder, label)) for label in ("circle", "square", "triangle")]
    response = client.post("/predict?top_k=2", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == trained_run.name
    assert [r["filename"] for r in body["results"]] == [f[1][0] for f in files]
    for result, label in zip(body["results"], ("circle", "square", "triangle")):
        assert len(result["predictions"]) == 2
        assert set(result["predictions"][0]) == {"label", "probability"}
        assert result["predictions"][0]["probability"] >= result["predictions"][1]["probability"]
        assert isinstance(result["unsure"], bool) and isinstance(result["unknown"], bool)
        assert result["latency_ms"] > 0
    assert sum(r["predictions"][0]["label"] == label
               for r, label in zip(body["results"], ("circle", "square", "triangle"))) >= 2
    rows = {r["id"]: r for r in PredictionLog(log_url).rows()}
    for result, (_, (_, data, _)) in zip(body["results"], files):
        row = rows[result["id"]]
        assert row["model"] == trained_run.name and row["top_k"] == result["predictions"]
        assert (row["width"], row["height"]) == Image.open(io.BytesIO(data)).size
        assert len(row["content_hash"]) == 64 and row["client"] and row["feedback_label"] is None


def test_feedback_is_stored_on_the_logged_prediction(client, shapes_folder, log_url):
    answer = client.post("/predict", files={"file": shape_file(shapes_folder, "square")}).json()["results"][0]
    response = client.post("/feedback", json={"id": answer["id"], "label": "square"})
    assert response.status_code == 200 and response.json()["known_label"] is True
    row = next(r for r in PredictionLog(log_url).rows() if r["id"] == answer["id"])
    assert row["feedback_label"] == "square" and row["feedback_time"] >= row["time"]


def test_health_model_and_docs(plain_client, trained_run):
    client = plain_client
    assert client.get("/health").json()["status"] == "ok"
    card = client.get("/model").json()
    assert card["run_id"] == trained_run.name and card["labels"] == ["circle", "square", "triangle"]
    assert card["backbone"] == "efficientnet_lite0" and card["validation"]["accuracy"] is not None
    assert card["created"] > 0
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def truncated_jpeg() -> bytes:
    data = image_bytes(size=(200, 160))
    return data[: len(data) // 2]


BAD_UPLOADS = {
    "not an image": (b"name,age\nann,3\n", 415, "not an image"),
    "truncated": (truncated_jpeg(), 415, "not a readable image"),
    "decompression bomb": (bomb_png(), 413, "too large"),
    "over the size limit": (b"\xff\xd8" + bytes(MAX_FILE_BYTES + 10), 413, "larger than the limit"),
    "empty": (b"", 400, "empty"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_gets_a_4xx_sentence_and_no_row(client, log_url, case):
    data, status, words = BAD_UPLOADS[case]
    before = PredictionLog(log_url).count()
    response = client.post("/predict", files={"file": ("upload.jpg", data, "image/jpeg")})
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and words in detail and "Traceback" not in detail and "0x" not in detail
    assert detail.endswith(".") and "upload.jpg" in detail
    assert PredictionLog(log_url).count() == before
    assert client.get("/health").status_code == 200  # still serving


def sentence(response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith(".") and "\n" not in detail
    return detail


def test_missing_field_bad_top_k_and_bad_feedback_are_sentences(plain_client, shapes_folder):
    client = plain_client
    assert "field 'file'" in sentence(client.post("/predict", files={"image": shape_file(shapes_folder, "circle")}))
    assert "field 'file'" in sentence(client.post("/predict"))
    response = client.post("/predict?top_k=0", files={"file": shape_file(shapes_folder, "circle")})
    assert response.status_code == 422 and "top_k" in sentence(response)
    response = client.post("/feedback", json={"id": "0" * 32, "label": "circle"})
    assert response.status_code == 404 and "No prediction" in sentence(response)
    response = client.post("/feedback", json={"label": "circle"})
    assert response.status_code == 422 and "'id'" in sentence(response)
    response = client.post("/feedback", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON" in sentence(response)


def test_a_request_body_over_the_limit_is_refused_while_streaming(plain_client):
    client = plain_client
    def chunks():  # no Content-Length: the service must count while it reads
        yield b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n\r\n"
        for _ in range(40):
            yield bytes(64 * 1024)

    response = client.post("/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "larger than the limit" in sentence(response)
    declared = client.post("/predict", content=bytes(2 * MAX_FILE_BYTES + 2**20 + 1),
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert declared.status_code == 413


def test_an_unexpected_failure_is_a_500_sentence(plain_client, shapes_folder, monkeypatch):
    client = plain_client
    service = client.app.state.service

    def broken(*_args, **_kwargs):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(service.predictor, "predict_details", broken)
    response = client.post("/predict", files={"file": shape_file(shapes_folder, "circle")})
    assert response.status_code == 500 and "internal detail" not in response.text and "error" in sentence(response)


def test_api_key_is_required_when_set(trained_run, tmp_path, shapes_folder):
    app = create_app(trained_run, log_url=f"sqlite:///{tmp_path / 'keyed.sqlite'}", api_key="s3cret-key")
    with TestClient(app) as keyed:
        upload = {"file": shape_file(shapes_folder, "circle")}
        assert keyed.get("/health").status_code == 200
        for headers in ({}, {"X-API-Key": "wrong"}):
            response = keyed.post("/predict", files=upload, headers=headers)
            assert response.status_code == 401 and "API key" in sentence(response)
            assert keyed.get("/model", headers=headers).status_code == 401
        assert keyed.post("/predict", files=upload, headers={"X-API-Key": "s3cret-key"}).status_code == 200


def test_serving_beyond_loopback_without_a_key_is_refused(trained_run, capsys, monkeypatch):
    assert cli_main(["serve", "--run", str(trained_run), "--host", "0.0.0.0"]) == 2
    assert "API key" in capsys.readouterr().err
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    assert cli_main(["serve", "--run", str(trained_run), "--api-key-env", "NO_SUCH_KEY_VARIABLE"]) == 2
    assert "NO_SUCH_KEY_VARIABLE" in capsys.readouterr().err


@pytest.mark.parametrize("backend", LOG_BACKENDS)
def test_kept_images_obey_the_retention_limit_and_feed_the_review_list(trained_run, tmp_path, shapes_folder, backend,
                                                                        request):
    log_url = new_log_url(backend, tmp_path, request)
    app = create_app(trained_run, log_url=log_url, keep_images=tmp_path / "kept", keep_max_count=2)
    with TestClient(app) as keeping:
        ids = [keeping.post("/predict", files={"file": shape_file(shapes_folder, label)}).json()["results"][0]["id"]
               for label in ("circle", "square", "triangle")]
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert kept == sorted(f"{i}.jpg" for i in ids[1:])  # the oldest went first
    review = kept_images_for_review(PredictionLog(log_url), tmp_path / "kept", max_confidence=1.01)
    assert [item["id"] for item in review] == ids[:0:-1] and all(item["path"].is_file() for item in review)
    without = create_app(trained_run, log_url=log_url)
    assert without.state.service.keeper is None  # privacy first: nothing kept unless asked


def test_a_batch_larger_than_a_cpu_chunk_answers_as_each_image_alone(trained_run, shapes_folder):
    from core.serving.inference import CPU_CHUNK, Predictor

    predictor = Predictor(trained_run)
    images = sorted(shapes_folder.rglob("*.jpg"))[:CPU_CHUNK + 3]
    together = predictor.probabilities(images)
    alone = [predictor.probabilities([image])[0] for image in images]
    assert together.shape == (len(images), len(predictor.labels))
    for row, single in zip(together, alone):
        assert (row - single).abs().max() < 1e-4
