"""The REST service: a trained run behind FastAPI, every answer logged before it is sent.

`create_app(run_dir, ...)` loads the model once and returns the app; `python -m core serve` runs it with uvicorn.
Endpoints: POST /predict, POST /feedback, GET /health, GET /model; OpenAPI docs at /docs.
"""
# no `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime, closures included

import asyncio
import hashlib
import hmac
import io
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.security import APIKeyHeader
from PIL import Image
from pydantic import BaseModel, Field

from core.data.preprocessing import ImageRejected, load_rgb
from core.runs.folder import Run
from core.serving.batching import MicroBatcher
from core.serving.errors import install_error_handlers, megabytes
from core.serving.inference import Predictor
from core.serving.keep import ImageKeeper
from core.serving.predlog import PredictionLog, default_url

MAX_FILE_BYTES = 20 * 2**20
MAX_FILES = 32
MAX_TOP_K = 100


@dataclass
class Job:
    """One decoded image waiting for the model, with what its log row needs."""
    id: str
    image: Image.Image
    filename: str
    content_hash: str
    width: int
    height: int
    image_format: str | None
    data: bytes | None  # only kept when inputs are kept
    top_k: int
    client: str
    started: float


class Feedback(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="the id of a prediction, as /predict returned it")
    label: str = Field(min_length=1, max_length=200, description="the true label of that image")


class Service:
    """What the endpoints share: the model (loaded once), the log, the batcher, the optional image keeper."""

    def __init__(self, run_dir: Path, log: PredictionLog, max_batch: int, keeper: ImageKeeper | None) -> None:
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.predictor = Predictor(self.run_dir)
        self.log, self.keeper = log, keeper
        self.batcher: MicroBatcher[Job, dict[str, Any]] = MicroBatcher(self.answer, max_batch=max_batch)
        self.started = time.time()

    def decode(self, data: bytes, filename: str, top_k: int, client: str, started: float) -> Job:
        """Runs in a worker thread; raises ImageRejected with the reason in words."""
        prep = self.predictor.preprocessing
        # The resize step of the run's preprocessing (bounded by the output, whatever the aspect ratio), done here
        # in parallel rather than in the one batch thread; Preprocessing.to_uint8 then finds it done and only crops.
        image = prep.resized(load_rgb(io.BytesIO(data), min_size=prep.resize_size))
        with Image.open(io.BytesIO(data)) as header:  # the stored size: JPEG draft decoding may have shrunk it
            width, height, image_format = header.width, header.height, header.format
        return Job(uuid.uuid4().hex, image, filename, hashlib.sha256(data).hexdigest(), width, height, image_format,
                   data if self.keeper else None, top_k, client, started)

    def answer(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """One forward pass for the whole batch; the rows are committed before any answer is returned."""
        details = self.predictor.predict_details([job.image for job in jobs], top_k=max(job.top_k for job in jobs))
        now = time.time()
        results, rows = [], []
        for job, prediction in zip(jobs, details):
            latency_ms = round((time.perf_counter() - job.started) * 1000, 2)
            top = prediction.top_k[:job.top_k]
            kept = self.keeper.keep(job.id, job.data, job.image_format) if self.keeper and job.data else None
            rows.append({"id": job.id, "time": now, "model": self.run_id, "content_hash": job.content_hash,
                         "width": job.width, "height": job.height, "top_k": top, "label": top[0]["label"],
                         "confidence": top[0]["probability"], "unsure": bool(prediction.unsure),
                         "unknown": bool(prediction.unknown), "ood_score": prediction.ood_score,
                         "latency_ms": latency_ms, "client": job.client[:64], "kept_file": kept})
            results.append({"id": job.id, "filename": job.filename, "predictions": top,
                            "unsure": bool(prediction.unsure), "unknown": bool(prediction.unknown),
                            "latency_ms": latency_ms})
        self.log.write(rows)
        return results

    def model_card(self) -> dict[str, Any]:
        run = Run(self.run_dir)
        evaluation, status = run.evaluation(), run.status()
        return {"run_id": self.run_id, "labels": self.predictor.labels, "backbone": self.predictor.config.backbone,
                "created": status.get("created"), "image_size": self.predictor.preprocessing.crop_size,
                "task": self.predictor.task.name,
                "validation": {**(evaluation.metrics if evaluation else {}),
                               "images": evaluation.num_images if evaluation else None}}


def create_app(run_dir: Path, log_url: str | None = None, api_key: str | None = None, max_batch: int = 16,
               keep_images: Path | None = None, keep_max_count: int = 1000, keep_max_bytes: int = 500 * 2**20,
               max_file_bytes: int = MAX_FILE_BYTES) -> FastAPI:
    """The app for one run. api_key: when set, /predict, /feedback and /model need it in `X-API-Key`."""
    run_dir = Path(run_dir)
    log = PredictionLog(log_url or default_url(run_dir.name))
    keeper = ImageKeeper(keep_images, keep_max_count, keep_max_bytes) if keep_images else None
    service = Service(run_dir, log, max_batch, keeper)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.batcher.start()
        yield
        await service.batcher.stop()
        log.close()

    app = FastAPI(title="TransferLab model service", lifespan=lifespan,
                  description=f"Predictions of the TransferLab run {run_dir.name}. Every answer is logged.")
    app.state.service = service
    install_error_handlers(app, max_request_bytes=max_file_bytes * 2 + 2**20)
    guard = _key_guard(api_key)

    @app.post("/predict", dependencies=[guard], summary="Top-k labels for one or more images")
    async def predict(request: Request, file: Annotated[list[UploadFile], File(description="one or more images")],
                      top_k: Annotated[int, Query(ge=1, le=MAX_TOP_K)] = 3) -> dict[str, Any]:
        if len(file) > MAX_FILES:
            raise HTTPException(413, f"Send at most {MAX_FILES} images per request.")
        started = time.perf_counter()
        client = request.client.host if request.client else ""
        service.batcher.incoming += len(file)
        try:
            jobs = [await _decoded(service, upload, top_k, client, started, max_file_bytes) for upload in file]
        finally:
            service.batcher.incoming -= len(file)
        return {"model": service.run_id, "results": await service.batcher.submit(jobs)}

    @app.post("/feedback", dependencies=[guard], summary="The true label of a logged prediction")
    async def feedback(body: Feedback) -> dict[str, Any]:
        if not await asyncio.to_thread(log.add_feedback, body.id, body.label):
            raise HTTPException(404, "No prediction with this id is in the log.")
        return {"id": body.id, "label": body.label, "known_label": body.label in service.predictor.labels}

    @app.get("/health", summary="Is the service up")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": service.run_id, "uptime_s": round(time.time() - service.started, 1),
                "batches": service.batcher.batches, "images": service.batcher.items,
                "model_busy_s": round(service.batcher.busy_s, 3)}

    @app.get("/model", dependencies=[guard], summary="Labels, backbone, validation metrics, run id, created")
    async def model() -> dict[str, Any]:
        return service.model_card()

    return app


async def _decoded(service: Service, upload: UploadFile, top_k: int, client: str, started: float,
                   max_file_bytes: int) -> Job:
    name = (upload.filename or "image")[:255]
    data = await upload.read(max_file_bytes + 1)
    if len(data) > max_file_bytes:
        raise HTTPException(413, f"'{name}' is larger than the limit of {megabytes(max_file_bytes)} per image.")
    if not data:
        raise HTTPException(400, f"'{name}' is empty.")
    try:
        return await asyncio.to_thread(service.decode, data, name, top_k, client, started)
    except ImageRejected as error:
        reason = str(error).split(" (")[0]  # the reason without Pillow's internals
        raise HTTPException(413 if "too large" in reason else 415, f"'{name}' could not be used: {reason}.") from None


def _key_guard(api_key: str | None) -> Any:
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="required when the service has a key")

    async def check(key: Annotated[str | None, Depends(header)]) -> None:
        if api_key and not (key and hmac.compare_digest(key.encode(), api_key.encode())):
            raise HTTPException(401, "A valid API key is needed in the X-API-Key header.")

    return Depends(check)
