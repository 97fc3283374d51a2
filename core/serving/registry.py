"""The local services of this app process: one per run, MAX_PER_WORKSPACE per workspace, MAX_LOCAL_SERVICES in all.

A classroom shares the slots: one student cannot take them all, and a service nobody calls stops by itself after
the idle time (read from its /health counters by a background thread), so a forgotten one frees its ~1 GB and its
slot. The Monitor page says who holds the slots as counts only (never names or keys).
"""
from __future__ import annotations

import atexit
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.i18n import _, duration, ngettext
from core.serving.process import (
    MAX_LOCAL_SERVICES,
    MAX_PER_WORKSPACE,
    ServiceProcess,
    ServiceStartError,
    idle_limit,
    idle_seconds,
    start_service,
    stop_service,
)


@dataclass(frozen=True)
class Usage:
    running: int  # started or starting, all workspaces
    yours: int
    limit: int
    per_workspace: int

    def sentence(self) -> str:
        if not self.running:
            return _("No local service is running (this server runs at most {limit}, {per_workspace} per "
                     "workspace).").format(limit=self.limit, per_workspace=self.per_workspace)
        return _("{running} of {limit} services are running: {yours} yours, {others} of other workspaces.").format(
            running=self.running, limit=self.limit, yours=self.yours, others=self.running - self.yours)


class ServiceRegistry:
    def __init__(self, limit: int = MAX_LOCAL_SERVICES, per_workspace: int = MAX_PER_WORKSPACE) -> None:
        self.limit, self.per_workspace = limit, per_workspace
        self._services: dict[str, ServiceProcess] = {}  # by run folder
        self._starting: dict[str, str] = {}  # run folder -> workspace, while its model loads (it holds a slot)
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None

    def get(self, run_dir: Path) -> ServiceProcess | None:
        with self._lock:
            self._forget_dead()
            return self._services.get(str(run_dir))

    def _forget_dead(self) -> None:
        for key in [key for key, service in self._services.items() if not service.alive()]:
            del self._services[key]

    def _held(self) -> list[str]:
        """The workspace of every slot taken (call with the lock held)."""
        self._forget_dead()
        return [service.workspace for service in self._services.values()] + list(self._starting.values())

    def usage(self, workspace: Path) -> Usage:
        with self._lock:
            held = self._held()
        return Usage(len(held), held.count(str(workspace)), self.limit, self.per_workspace)

    def start(self, run_dir: Path, workspace: Path, log_url: str | None = None, max_batch: int = 16,
              keep_images: Path | None = None) -> ServiceProcess:
        key, owner = str(run_dir), str(workspace)
        with self._lock:  # the check and the reservation together: two clicks at once cannot both take the last slot
            held = self._held()
            if key in self._services:
                return self._services[key]
            if key in self._starting:
                raise ServiceStartError(_("This model's service is starting already; wait a moment."))
            if held.count(owner) >= self.per_workspace:
                raise ServiceStartError(ngettext(
                    "This workspace already runs {count} local service (the most one workspace may run); stop it "
                    "first.", "This workspace already runs {count} local services (the most one workspace may run); "
                    "stop one first.", held.count(owner)).format(count=held.count(owner)))
            if len(held) >= self.limit:
                usage = Usage(len(held), held.count(owner), self.limit, self.per_workspace)
                raise ServiceStartError(_("All {limit} local services of this server are in use ({yours} yours, "
                                          "{others} of other workspaces); one that answers nothing for {idle} stops "
                                          "by itself.").format(limit=self.limit, yours=usage.yours,
                                                               others=usage.running - usage.yours,
                                                               idle=duration(idle_limit())))
            self._starting[key] = owner
        try:
            service = start_service(Path(run_dir), log_url, max_batch, keep_images=keep_images)
        finally:
            with self._lock:
                self._starting.pop(key, None)
        service.workspace = owner
        with self._lock:
            self._services[key] = service
        self._start_reaper()
        return service

    def stop(self, run_dir: Path) -> None:
        with self._lock:
            service = self._services.pop(str(run_dir), None)
        if service is not None:
            stop_service(service)

    def stop_all(self) -> None:
        for key in list(self._services):
            self.stop(Path(key))

    def reap_idle(self) -> list[str]:
        """Stop every service idle for longer than the limit; returns their run ids."""
        with self._lock:
            candidates = list(self._services.items())
        stopped = []
        for key, service in candidates:
            idle = idle_seconds(service)
            if idle is not None and idle >= idle_limit():
                self.stop(Path(key))
                stopped.append(service.run_id)
        return stopped

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap_forever, name="transferlab-idle-services",
                                                daemon=True)
                self._reaper.start()

    def _reap_forever(self) -> None:
        while True:
            time.sleep(min(60.0, idle_limit() / 3))
            try:
                self.reap_idle()
            except Exception:  # noqa: BLE001 - the reaper must outlive one bad check; the next one retries
                pass


registry = ServiceRegistry()
atexit.register(registry.stop_all)  # a local service never outlives the app that started it
