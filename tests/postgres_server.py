"""A throwaway PostgreSQL server for the tests and the benchmark: Debian's `postgresql` package (initdb + pg_ctl),
a cluster in a temporary folder, listening on a free loopback port (and a socket in that folder), stopped at the end.

PostgreSQL refuses to run as root, so as root (CI runs as root on a clean Debian clone) the cluster belongs to
`nobody`, in a folder under /tmp that `nobody` owns (the test's own tmp folders are root's, mode 700).
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

PACKAGE_HINT = "PostgreSQL (initdb, pg_ctl) is not installed: scripts/test.sh installs Debian's postgresql package"


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    for folder in [Path(p).parent for p in (shutil.which("pg_ctl"), shutil.which("initdb")) if p]:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        # As root, under /tmp itself: `nobody` must reach the folder (TMPDIR may be a folder only root can enter).
        self.folder = Path(tempfile.mkdtemp(prefix="transferlab-pg-", dir="/tmp" if os.geteuid() == 0 else None))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "nobody", "nogroup" if _group_exists("nogroup") else "nobody")
            self.as_user = ["runuser", "-u", "nobody", "--"]

    def _run(self, *command: str) -> None:
        done = subprocess.run(self.as_user + list(command), capture_output=True, text=True, cwd=self.folder,
                              timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout)[-800:]}")

    def init(self) -> None:
        self._run(str(self.binaries / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--locale=C")

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
                   f"-c synchronous_commit=on -c max_connections=200")
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        import psycopg

        name = f"log_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError, RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError(PACKAGE_HINT)
    server = PostgresServer(binaries)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()
