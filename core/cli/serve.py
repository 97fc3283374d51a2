"""`serve`: a trained run as a REST service (FastAPI + uvicorn), every prediction logged.

One process, or N replicas with `--workers N`: uvicorn binds the port once and its supervisor runs N worker
processes that accept from it (the kernel spreads connections), restarting one that dies. Each loads the model and
writes to the same log, so the log must be one every process can write: PostgreSQL, or SQLite on this machine.
For replicas on several machines, run the command on each (same --log-db) behind any HTTP load balancer.
"""
from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from core.i18n import _, quoted

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_WORKERS = 16


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help=_("answer predictions over HTTP (docs at /docs), logging every one"))
    p.add_argument("--run", required=True, dest="run_ref", metavar="RUN",
                   help=_("the run folder of a finished training run, or its run id with --workspace-key-env"))
    p.add_argument("--workspace-key-env", default=None, metavar="NAME",
                   help=_("name of the environment variable holding your workspace key (the ws=... of the app's "
                        "address): --run is then a run id of that workspace"))
    p.add_argument("--host", default="127.0.0.1", help=_("address to listen on (anything but loopback needs a key)"))
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help=_("replicas: processes answering on the same port"))
    p.add_argument("--log-db", default=None, help=_("SQLAlchemy URL of the prediction log, e.g. "
                   "postgresql://user@host/db for replicas (default: SQLite in the run's workspace)"))
    p.add_argument("--api-key-env", default=None, metavar="NAME",
                   help=_("name of the environment variable that holds the API key (header X-API-Key)"))
    p.add_argument("--max-batch", type=int, default=16, help=_("most images in one forward pass (1: no batching)"))
    p.add_argument("--keep-images", default=None, metavar="DIR", help=_("keep the inputs in DIR (off by default)"))
    p.add_argument("--keep-max-count", type=int, default=1000, help=_("kept images: the oldest go beyond this count"))
    p.add_argument("--keep-max-mb", type=int, default=500, help=_("kept images: the oldest go beyond this size"))
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


def resolve_run(run: str, workspace_key_env: str | None) -> Path:
    """The run folder: a path, or a run id inside the workspace whose key the named variable holds. Never prints a
    workspace path (it holds the key)."""
    from core import paths

    if not workspace_key_env:
        if not (Path(run) / "config.json").is_file():
            shown = run if len(run) <= 120 else f"{run[:80]}...{run[-30:]}"
            raise ValueError(_("no run folder at {path} (a run folder holds config.json)").format(path=quoted(shown)))
        return Path(run)
    key = os.environ.get(workspace_key_env, "").strip()
    if not paths.is_workspace_key(key):
        raise ValueError(_("the environment variable {name} holds no workspace key of this server: set it to the key "
                           "in your browser's address bar, after ws=").format(name=workspace_key_env))
    run_dir = paths.home() / "workspaces" / key / "runs" / run
    if not RUN_ID.fullmatch(run) or not (run_dir / "config.json").is_file():
        raise ValueError(_("this workspace has no run with that id (the Monitor page shows the command with it)"))
    return run_dir


def _serve(args: argparse.Namespace) -> int:
    run_dir = resolve_run(args.run_ref, args.workspace_key_env)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "")
        if not api_key:
            raise ValueError(_("the environment variable {name} holds no API key").format(name=args.api_key_env))
    if not is_loopback(args.host) and not api_key:
        raise ValueError(_("listening on {host} makes the model reachable from other machines, so it needs an API "
                           "key: put one in an environment variable and name it with --api-key-env").format(host=args.host))
    if not 1 <= args.max_batch <= 256:
        raise ValueError(_("--max-batch must be between 1 and 256"))
    if not 0 <= args.port <= 65535:
        raise ValueError(_("--port must be between 0 and 65535"))
    if not 1 <= args.workers <= MAX_WORKERS:
        raise ValueError(_("--workers must be between 1 and {most}").format(most=MAX_WORKERS))
    # The retention limits of kept images hold for all replicas together: each keeps its share.
    settings = {"log_url": args.log_db, "max_batch": args.max_batch, "keep_images": args.keep_images,
                "keep_max_count": max(1, args.keep_max_count // args.workers),
                "keep_max_bytes": max(1, args.keep_max_mb * 2**20 // args.workers)}
    url = service_url(args.host, args.port)
    if args.workers > 1:
        return _serve_replicas(run_dir, settings, args, url)
    from core.serving.service import create_app

    app = create_app(run_dir, api_key=api_key, **settings | {"keep_images": Path(args.keep_images) if args.keep_images
                                                              else None})
    _announce(run_dir.name, url, app.state.service.log.engine.url, 1)
    # uvicorn turns SIGINT and SIGTERM into a graceful shutdown: requests in flight finish, then the app stops.
    _Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")).run()
    print(_("Stopped."), file=sys.stderr, flush=True)
    return 0


def _serve_replicas(run_dir: Path, settings: dict, args: argparse.Namespace, url: str) -> int:
    from uvicorn.supervisors import Multiprocess

    from core.serving.predlog import PredictionLog, default_url, workspace_of
    from core.serving.service import SETTINGS_ENV

    log_url = settings["log_url"] or default_url(workspace_of(run_dir), run_dir.name)
    log = PredictionLog(log_url)  # the schema once, before the replicas start (each also checks, under a lock)
    log.close()
    os.environ[SETTINGS_ENV] = json.dumps(settings | {"run_dir": str(run_dir), "log_url": log_url,
                                                      "workers": args.workers, "api_key_env": args.api_key_env})
    config = uvicorn.Config("core.serving.service:app_from_environment", factory=True, host=args.host,
                            port=args.port, workers=args.workers, log_level="warning")
    _announce(run_dir.name, url, log.engine.url, args.workers)
    # The supervisor turns SIGINT/SIGTERM into a graceful stop of every replica, and restarts one that dies.
    Multiprocess(config, sockets=[config.bind_socket()]).run()
    print(_("Stopped."), file=sys.stderr, flush=True)
    return 0


def _announce(run_id: str, url: str, log_url: object, workers: int) -> None:
    from core.serving.process import hide_keys

    shown = hide_keys(log_url.render_as_string(hide_password=True))  # type: ignore[attr-defined]
    if workers > 1:
        line = _("Serving run {run} at {url} as {count} replicas (API docs: {url}/docs; log: {log}). Stop with "
                 "Ctrl-C.").format(run=run_id, url=url, count=workers, log=shown)
    else:
        line = _("Serving run {run} at {url} (API docs: {url}/docs; log: {log}). Stop with Ctrl-C.").format(
            run=run_id, url=url, log=shown)
    print(line, flush=True)


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
