"""Metrics summed across the workers of one gateway.

``tollway gateway --workers N`` forks N processes behind one socket, so a Prometheus
scrape reaches one of them at random; per-process counters would jump between
scrapes. Each worker therefore publishes its counters as a small JSON file in a
directory the supervisor creates for this run (``$TOLLWAY_METRICS_DIR``), every
``interval`` seconds and at shutdown, written to a temporary name and renamed so a
reader never sees half a file. ``/metrics`` renders its own live counters plus every
other worker's last file: totals at most ``interval`` seconds behind, and monotonic,
since the file of a worker that exited stays and keeps counting in the sum.

Files, not shared memory or a socket: no dependency, nothing to lock, and the cost is one
small write per worker per interval, off the request path.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tollway.core.logs import logger
from tollway.gateway.metrics import Metrics

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["METRICS_DIR_ENV", "MetricsShare"]

METRICS_DIR_ENV = "TOLLWAY_METRICS_DIR"
log = logger("tollway.gateway")


class MetricsShare:
    """One worker's side: publish its counters, read the others'."""

    def __init__(self, directory: str | Path, metrics: Metrics, *, interval: float = 0.5) -> None:
        self.directory = Path(directory)
        self.metrics = metrics
        self.interval = interval
        self.name = f"worker-{os.getpid()}.json"
        self._task: asyncio.Task[None] | None = None

    def publish(self) -> None:
        path = self.directory / self.name
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.metrics.snapshot()))
        os.replace(temporary, path)

    def _others(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.directory.glob("worker-*.json")):
            if path.name == self.name:
                continue
            try:
                yield json.loads(path.read_text())
            except (OSError, ValueError):  # a worker's file vanished or was never whole
                log.warning("metrics of %s could not be read; left out of this scrape", path.name)

    def totals(self) -> Metrics:
        """This worker's live counters plus every other worker's last published ones."""
        total = Metrics.summed(self._others())
        total.add(self.metrics.snapshot())
        return total

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.publish()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.publish()
            except OSError as exc:
                log.warning("could not publish this worker's metrics: %s", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        try:
            self.publish()  # the last counts of an exiting worker stay in the sum
        except OSError as exc:
            log.warning("could not publish this worker's last metrics: %s", exc)
