"""Test helpers for the Hugging Face hub: a cache laid out exactly as huggingface_hub lays it, and a hub server.

`write_repo` saves a timm model with timm's own `save_for_hf` (model.safetensors + config.json, as timm's hub
repositories hold them) into blobs/ with snapshots/REV/ symlinks and refs/main, the layout an operator copies
onto an offline server. `FakeHub` serves the same files over HTTP on loopback, answering the two requests
huggingface_hub's download makes (HEAD for the metadata, GET for the bytes), so the download path runs for real.
"""
from __future__ import annotations

import hashlib
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from torch import nn


def write_repo(hub: Path, repo: str, model: nn.Module, revision: str = "0" * 40) -> Path:
    """The repository's snapshot folder; the files are blobs named by their sha256, linked from it."""
    from timm.models import save_for_hf

    folder = hub / f"models--{repo.replace('/', '--')}"
    staging = folder / "staging"
    save_for_hf(model, str(staging), safe_serialization=True)
    snapshot = folder / "snapshots" / revision
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in staging.iterdir():
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.move(str(file), folder / "blobs" / digest)
        (snapshot / file.name).unlink(missing_ok=True)
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", digest))
    staging.rmdir()
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    return snapshot


class FakeHub:
    """`files[(repo, filename)] = bytes`, served at /REPO/resolve/main/FILENAME on 127.0.0.1."""

    def __init__(self, files: dict[tuple[str, str], bytes], revision: str = "1" * 40) -> None:
        self.files, self.revision, self.requests = files, revision, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                parts = self.path.split("?")[0].strip("/").split("/")
                data = hub.files.get(("/".join(parts[:2]), "/".join(parts[4:])))
                if len(parts) < 5 or parts[2:4] != ["resolve", "main"] or data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", hub.revision)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
