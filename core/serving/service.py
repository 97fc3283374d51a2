"""The REST service: a trained run behind FastAPI, every answer logged before it is sent.

`create_app(run_dir, ...)` loads the model once and returns the app; `python -m core serve` runs it with uvicorn,
as one process or as N replicas (`--workers N`, each process calls `app_from_environment`) sharing one log.
Endpoints: POST /predict, POST /feedback, GET /health, GET /model; OpenAPI docs at /docs.
"""
# no `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime, closures included

import asyncio
import hashlib
import hmac
import io
import json
import os
import re
import socket
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Header, HTTPException, Query, Request, UploadFile
from fastapi.security import APIKeyHeader
from PIL import Image

from core.data.preprocessing import ImageRejected, ImageTooLarge, load_rgb
from core.i18n import _, quoted
from core.runs.folder import Run
from core.serving import schemas
from core.serving.batching import MicroBatcher
from core.serving.errors import install_error_handlers, megabytes
from core.serving.inference import Predictor
from core.serving.keep import ImageKeeper
from core.serving.predlog import LABEL_CHARS, PredictionLog, default_url, workspace_of

MAX_FILE_BYTES = 20 * 2**20
MAX_FILES = 32
MAX_TOP_K = 100
_DETAILS = re.compile(r" \(|（")  # where a reason's parenthesis opens, in English or in Chinese
SETTINGS_ENV = "TRANSFERLAB_SERVE_SETTINGS"  # how `serve --workers N` hands create_app's arguments to each replica


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
    retried: bool = False  # sent with an Idempotency-Key: its row may exist already


def prediction_id(idempotency_key: str | None, position: int, content_hash: str) -> tuple[str, bool]:
    """A random id; with an Idempotency-Key, the same id for the same key, position and image, so the client's
    retry (to this replica or another) finds the row the first attempt logged instead of adding a second one."""
    if not idempotency_key:
        return uuid.uuid4().hex, False
    return hashlib.sha256(f"{idempotency_key}\n{position}\n{content_hash}".encode()).hexdigest()[:32], True


class Service:
    """What the endpoints share: the model (loaded once), the log, the batcher, the optional image keeper."""

    def __init__(self, run_dir: Path, log: PredictionLog, max_batch: int, keeper: ImageKeeper | None) -> None:
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.predictor = Predictor(self.run_dir)
        self.log, self.keeper = log, keeper
        self.batcher: MicroBatcher[Job, dict[str, Any]] = MicroBatcher(self.answer, max_batch=max_batch)
        self.started = time.time()
        self.replica = f"{socket.gethostname()}:{os.getpid()}"[-64:]
        self.requests, self.last_request = 0, time.monotonic()

    def touch(self) -> None:
        """A request that uses the model or the log: /health reports the count and the idle time."""
        self.requests += 1
        self.last_request = time.monotonic()

    def decode(self, data: bytes, filename: str, top_k: int, client: str, started: float,
               idempotency_key: str | None = None, position: int = 0) -> Job:
        """Runs in a worker thread; raises ImageRejected with the reason in words."""
        prep = self.predictor.preprocessing
        # The resize step of the run's preprocessing (bounded by the output, whatever the aspect ratio), done here
        # in parallel rather than in the one batch thread; Preprocessing.to_uint8 then finds it done and only crops.
        image = prep.resized(load_rgb(io.BytesIO(data), min_size=prep.resize_size))
        with Image.open(io.BytesIO(data)) as header:  # the stored size: JPEG draft decoding may have shrunk it
            width, height, image_format = header.width, header.height, header.format
        digest = hashlib.sha256(data).hexdigest()
        identifier, retried = prediction_id(idempotency_key, position, digest)
        return Job(identifier, image, filename, digest, width, height, image_format,
                   data if self.keeper else None, top_k, client, started, retried)

    def answer(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """One forward pass for the batch's new images; the rows are committed before any answer is returned.
        Images of a retried request already in the log are answered from their row, never logged twice."""
        logged = self.log.by_id([job.id for job in jobs if job.retried])
        fresh = [job for job in jobs if job.id not in logged]
        top = max((job.top_k for job in fresh), default=1)
        details = self.predictor.predict_details([job.image for job in fresh], top_k=top) if fresh else []
        now = time.time()
        rows = [self._row(job, prediction, now) for job, prediction in zip(fresh, details)]
        self.log.write(rows)
        if self.keeper:  # after the rows: a kept file always has its row
            for job, row in zip(fresh, rows):
                if row["kept_file"] and job.data:
                    self.keeper.store(row["kept_file"], job.data)
        answers = logged | {row["id"]: row for row in rows}
        return [{"id": job.id, "filename": job.filename, "predictions": answers[job.id]["top_k"][:job.top_k],
                 **(answers[job.id].get("answer") or {}), "unsure": bool(answers[job.id]["unsure"]),
                 "unknown": bool(answers[job.id]["unknown"]), "latency_ms": answers[job.id]["latency_ms"]}
                for job in jobs]

    def _row(self, job: Job, prediction: Any, now: float) -> dict[str, Any]:
        top, extra = prediction.top_k[:job.top_k], prediction.extra
        kept = self.keeper.name_for(job.id, len(job.data), job.image_format) if self.keeper and job.data else None
        # The answer's label as the Monitor counts it: the class, the set of tags; a number has none.
        label = ";".join(extra["labels"]) if "labels" in extra else top[0]["label"] if top else None
        return {"id": job.id, "time": now, "model": self.run_id, "content_hash": job.content_hash,
                "width": job.width, "height": job.height, "top_k": top, "answer": extra or None,
                "label": None if label is None else label[:LABEL_CHARS],
                "confidence": top[0]["probability"] if top else None, "unsure": bool(prediction.unsure),
                "unknown": bool(prediction.unknown), "ood_score": prediction.ood_score,
                "latency_ms": round((time.perf_counter() - job.started) * 1000, 2), "client": job.client[:64],
                "kept_file": kept, "replica": self.replica}

    def model_card(self) -> dict[str, Any]:
        run = Run(self.run_dir)
        evaluation, status = run.evaluation(), run.status()
        return {"run_id": self.run_id, "labels": self.predictor.labels, "backbone": self.predictor.config.backbone,
                "created": status.get("created"), "image_size": self.predictor.preprocessing.crop_size,
                "task": self.predictor.task.name,
                "validation": {**(evaluation.metrics if evaluation else {}),
                               "images": evaluation.num_images if evaluation else None}}

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model": self.run_id, "replica": self.replica,
                "uptime_s": round(time.time() - self.started, 1), "requests": self.requests,
                "idle_s": round(time.monotonic() - self.last_request, 1), "batches": self.batcher.batches,
                "images": self.batcher.items, "model_busy_s": round(self.batcher.busy_s, 3)}


def create_app(run_dir: Path, log_url: str | None = None, api_key: str | None = None, max_batch: int = 16,
               keep_images: Path | None = None, keep_max_count: int = 1000, keep_max_bytes: int = 500 * 2**20,
               max_file_bytes: int = MAX_FILE_BYTES) -> FastAPI:
    """The app for one run. api_key: when set, /predict, /feedback and /model need it in `X-API-Key` (and the
    published schema says so; without a key it declares no security at all)."""
    run_dir = Path(run_dir)
    log = PredictionLog(log_url or default_url(workspace_of(run_dir), run_dir.name))
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
    _routes(app, service, max_file_bytes, api_key)
    return app


def _routes(app: FastAPI, service: Service, max_file_bytes: int, api_key: str | None) -> None:
    guarded = [_key_guard(api_key), Depends(service.touch)] if api_key else [Depends(service.touch)]
    keyed = (401,) if api_key else ()
    Feedback = schemas.feedback_model(service.predictor.labels, service.predictor.task.truth)  # noqa: N806 - a class, built for this model

    @app.post("/predict", dependencies=guarded, summary="Top-k labels for one or more images",
              response_model=schemas.PredictResponse,
              responses=schemas.error_responses(400, *keyed, 413, 415, 422, 500, 503))
    async def predict(request: Request,
                      file: Annotated[list[UploadFile], File(description="one or more images (JPEG, PNG, ...)",
                                                             min_length=1, max_length=MAX_FILES)],
                      top_k: Annotated[int, Query(ge=1, le=MAX_TOP_K)] = 3,
                      # `str`, not `str | None`: the schema then declares a string (never a literal "null")
                      idempotency_key: Annotated[str, Header(
                          pattern=schemas.IDEMPOTENCY_KEY,
                          description="any unique string per request: a retry with the same key and images gets "
                                      "the same answers and ids, logged once")] = None) -> dict[str, Any]:
        started = time.perf_counter()
        client = request.client.host if request.client else ""
        service.batcher.incoming += len(file)
        try:
            jobs = [await _decoded(service, upload, top_k, client, started, max_file_bytes, idempotency_key, n)
                    for n, upload in enumerate(file)]
        finally:
            service.batcher.incoming -= len(file)
        return {"model": service.run_id, "results": await service.batcher.submit(jobs)}

    @app.post("/feedback", dependencies=guarded, summary="The true label of a logged prediction",
              response_model=schemas.FeedbackResponse,
              responses=schemas.error_responses(400, *keyed, 404, 409, 413, 422, 500, 503))
    async def feedback(request: Request, body: Feedback) -> dict[str, Any]:
        client = request.client.host if request.client else ""
        # tags are logged as the answers are: the set, ';'-joined (the Monitor reads both alike)
        given = body.label if isinstance(body.label, str) else ";".join(sorted(set(body.label)))
        counted = await asyncio.to_thread(service.log.add_feedback, body.id, given, client)
        if counted is None:
            raise HTTPException(404, _("No prediction with this id is in the log."))
        return {"id": body.id, "label": given, "counted_label": counted, "known_label": True}

    @app.get("/health", summary="Is the service up; its counters", response_model=schemas.Health,
             responses=schemas.error_responses(500))
    async def health() -> dict[str, Any]:
        return service.health()

    @app.get("/model", dependencies=guarded, summary="Labels, backbone, validation metrics, run id, created",
             response_model=schemas.ModelCard, responses=schemas.error_responses(*keyed, 500))
    async def model() -> dict[str, Any]:
        return service.model_card()


async def _decoded(service: Service, upload: UploadFile, top_k: int, client: str, started: float,
                   max_file_bytes: int, idempotency_key: str | None, position: int) -> Job:
    name = (upload.filename or "image")[:255]
    data = await upload.read(max_file_bytes + 1)
    if len(data) > max_file_bytes:
        raise HTTPException(413, _("{name} is larger than the limit of {size} per image.").format(
            name=quoted(name), size=megabytes(max_file_bytes)))
    if not data:
        raise HTTPException(400, _("{name} is empty.").format(name=quoted(name)))
    try:
        return await asyncio.to_thread(service.decode, data, name, top_k, client, started, idempotency_key, position)
    except ImageRejected as error:
        reason = _DETAILS.split(str(error))[0]  # the reason without its details (Pillow's internals among them)
        raise HTTPException(413 if isinstance(error, ImageTooLarge) else 415,
                            _("{name} could not be used: {reason}.").format(name=quoted(name), reason=reason)) from None


def _key_guard(api_key: str) -> Any:
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the key this service was started with")

    async def check(key: Annotated[str | None, Depends(header)]) -> None:
        if not (key and hmac.compare_digest(key.encode(), api_key.encode())):
            raise HTTPException(401, _("A valid API key is needed in the X-API-Key header."))

    return Depends(check)


def app_from_environment() -> FastAPI:
    """The app of one replica of `python -m core serve --workers N`: uvicorn spawns each worker, which calls this.
    The settings come as JSON in SETTINGS_ENV; the API key stays in the variable the operator named."""
    settings = json.loads(os.environ[SETTINGS_ENV])
    workers = int(settings.pop("workers", 1))
    key_env = settings.pop("api_key_env", None)
    import torch

    # N replicas on one machine share its cores: each takes its part instead of all of them (oversubscription).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    keep = settings.pop("keep_images", None)
    return create_app(Path(settings.pop("run_dir")), api_key=os.environ.get(key_env) if key_env else None,
                      keep_images=Path(keep) if keep else None, **settings)
