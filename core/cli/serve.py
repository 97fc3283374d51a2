"""`serve`: a trained run as a REST service (FastAPI + uvicorn), every prediction logged."""
from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="answer predictions over HTTP (docs at /docs), logging every one")
    p.add_argument("--run", required=True, help="the run folder of a finished training run")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (anything but loopback needs a key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-db", default=None, help="SQLAlchemy URL of the prediction log "
                   "(default: SQLite under $TRANSFERLAB_HOME/serving/)")
    p.add_argument("--api-key-env", default=None, metavar="NAME",
                   help="name of the environment variable that holds the API key (header X-API-Key)")
    p.add_argument("--max-batch", type=int, default=16, help="most images in one forward pass (1: no batching)")
    p.add_argument("--keep-images", default=None, metavar="DIR", help="keep the inputs in DIR (off by default)")
    p.add_argument("--keep-max-count", type=int, default=1000, help="kept images: the oldest go beyond this count")
    p.add_argument("--keep-max-mb", type=int, default=500, help="kept images: the oldest go beyond this size")
    p.set_defaults(handler=_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def service_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve(args: argparse.Namespace) -> int:
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "")
        if not api_key:
            raise ValueError(f"the environment variable {args.api_key_env} holds no API key")
    if not is_loopback(args.host) and not api_key:
        raise ValueError(f"listening on {args.host} makes the model reachable from other machines, so it needs an "
                         f"API key: put one in an environment variable and name it with --api-key-env")
    if not 1 <= args.max_batch <= 256:
        raise ValueError("--max-batch must be between 1 and 256")
    if not 0 <= args.port <= 65535:
        raise ValueError("--port must be between 0 and 65535")
    from core.serving.service import create_app

    app = create_app(Path(args.run), log_url=args.log_db, api_key=api_key, max_batch=args.max_batch,
                     keep_images=Path(args.keep_images) if args.keep_images else None,
                     keep_max_count=args.keep_max_count, keep_max_bytes=args.keep_max_mb * 2**20)
    url = service_url(args.host, args.port)
    print(f"Serving run {Path(args.run).name} at {url} (API docs: {url}/docs; log: "
          f"{app.state.service.log.engine.url.render_as_string(hide_password=True)}). Stop with Ctrl-C.", flush=True)
    # uvicorn turns SIGINT and SIGTERM into a graceful shutdown: requests in flight finish, then the app stops.
    _Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")).run()
    print("Stopped.", file=sys.stderr, flush=True)
    return 0


class _Server(uvicorn.Server):
    """uvicorn's server, but Ctrl-C / SIGTERM end with exit status 0 after the graceful shutdown.

    (uvicorn re-raises the captured signal once it has stopped, so the process would die of it.)
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
