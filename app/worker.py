"""The one background worker: a single thread that owns every model and the renderer.

Modelled on Anki's single background queue and ``CollectionOp``/``QueryOp`` builder: the GUI
submits plain callables, they run one at a time, in order, on one thread, and their results,
errors and progress come back to the GUI thread through Qt signals (queued connections).

A job is ``fn(ctx) -> result``. ``ctx`` is a :class:`JobContext`:

* ``ctx.progress(fraction, text)`` reports progress (``fraction`` in 0..1, or ``None`` when
  unknown); it arrives on the GUI thread as ``on_progress(fraction, text)``;
* ``ctx.cancelled`` is true once the handle's ``cancel()`` was called; a long job checks it (or
  calls ``ctx.raise_if_cancelled()``) and stops;
* ``ctx.resource(key, factory)`` gives a long-lived object owned by the worker thread (the
  model registry, the FluidSynth renderer), created by ``factory()`` the first time and kept;
  ``ctx.renderer()`` is the shared :class:`models.render.Renderer`;
* ``ctx.model(name_or_path, family)`` is a model loaded through the worker's one
  :class:`models.registry.ModelRegistry`, which keeps each model by its resolved folder: asked
  for by name (a workspace) or by path (the live panel's duet), a model is loaded once.

Jobs never touch widgets. TensorFlow/Keras are imported only inside jobs (by the code in
``models/`` that they call); the first job the app submits is :func:`probe_compute`.

The application runs a second queue of this class, its opener (``thread_name``
"cadenza-opener", :attr:`app.services.Services.opener`), that opens and closes the live panel's
built-in outputs and never runs a model: an output must not wait behind a model job or the duet.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from models.errors import CadenzaError

log = logging.getLogger(__name__)

Job = Callable[["JobContext"], Any]


class JobCancelled(Exception):
    """Raised inside a job by :meth:`JobContext.raise_if_cancelled`; ends the job quietly."""


class JobContext:
    """What a running job sees: progress reporting, cancellation and worker-owned resources."""

    def __init__(self, worker: Worker, job_id: int, cancel_event: threading.Event) -> None:
        self._worker = worker
        self._job_id = job_id
        self._cancel = cancel_event

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled()

    def progress(self, fraction: float | None, text: str = "") -> None:
        value = -1.0 if fraction is None else max(0.0, min(1.0, float(fraction)))
        self._worker._bridge.progress.emit(self._job_id, value, str(text))

    def resource(self, key: Any, factory: Callable[[], Any]) -> Any:
        return self._worker._resource(key, factory)

    def drop_resource(self, key: Any) -> None:
        self._worker._drop_resource(key)

    def model(self, name_or_path: str | None,
              family: str | tuple[str, ...] | None = None) -> Any:
        """The model (the family's façade) by name or folder, loaded once and kept by the worker
        (one entry per resolved folder, whichever way it was named). ``family`` makes a model of
        another family a one-line ``CadenzaError``; ``None`` is that family's installed default.
        """
        return self.registry().load(name_or_path, family)

    def registry(self) -> Any:
        """The worker's :class:`models.registry.ModelRegistry` (lists, loads and keeps models)."""

        def make() -> Any:
            from models.registry import ModelRegistry

            return ModelRegistry()

        return self.resource("registry", make)

    def renderer(self) -> Any:
        """The worker's one persistent FluidSynth renderer (``models.render.Renderer``)."""

        def make() -> Any:
            from models.render import Renderer

            return Renderer(soundfont=self._worker.soundfont or None)

        return self.resource("renderer", make)


class JobHandle:
    """What :meth:`Worker.submit` returns: ``cancel()`` and the job's state."""

    def __init__(self, job_id: int, label: str) -> None:
        self.id = job_id
        self.label = label
        self._cancel = threading.Event()
        self.done = False

    def cancel(self) -> None:
        """Ask the job to stop; a job that has not started yet will not run at all."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()


@dataclass
class _Pending:
    fn: Job
    handle: JobHandle
    on_success: Callable[[Any], None] | None
    on_failure: Callable[[Exception], None] | None
    on_progress: Callable[[float | None, str], None] | None
    on_cancelled: Callable[[], None] | None


class _Bridge(QObject):
    """Lives on the GUI thread; the worker thread emits, the GUI thread receives (queued)."""

    progress = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, object)
    cancelled = Signal(int)


class Worker(QObject):
    """One background thread running submitted jobs one at a time, in submission order."""

    busy_changed = Signal(bool)
    compute_device = Signal(str)  # "GPU: name" / "CPU" once probe_compute() has run

    def __init__(self, parent: QObject | None = None, soundfont: str = "",
                 thread_name: str = "cadenza-worker") -> None:
        super().__init__(parent)
        self.soundfont = soundfont
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._resources: dict[Any, Any] = {}
        self._thread: threading.Thread | None = None
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._on_progress)
        self._bridge.finished.connect(self._on_finished)
        self._bridge.failed.connect(self._on_failed)
        self._bridge.cancelled.connect(self._on_cancelled)
        self.thread_name = thread_name

    # ------------------------------------------------------------------ GUI-thread API
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def submit(
        self,
        fn: Job,
        on_success: Callable[[Any], None] | None = None,
        on_failure: Callable[[Exception], None] | None = None,
        on_progress: Callable[[float | None, str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        label: str = "",
    ) -> JobHandle:
        """Queue ``fn(ctx)``; the callbacks run later on the GUI thread.

        ``on_success(result)`` when it returns, ``on_failure(exc)`` when it raises (``str(exc)``
        is the one-line message of a ``CadenzaError``), ``on_progress(fraction, text)`` for each
        ``ctx.progress`` call (``fraction`` is ``None`` when unknown), ``on_cancelled()`` when
        it was cancelled. Without ``on_failure`` an error is logged.
        """
        self.start()
        handle = JobHandle(next(self._ids), label or getattr(fn, "__name__", "job"))
        item = _Pending(fn, handle, on_success, on_failure, on_progress, on_cancelled)
        self._pending[handle.id] = item
        if len(self._pending) == 1:
            self.busy_changed.emit(True)
        self._queue.put(item)
        return handle

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Cancel what is queued, let the running job finish, release resources, stop."""
        for item in list(self._pending.values()):
            item.handle.cancel()
        if self._thread is None:
            return True
        self._queue.put(None)
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        if not alive:
            self._thread = None
        return not alive

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            handle = item.handle
            if handle.cancelled:
                self._bridge.cancelled.emit(handle.id)
                continue
            ctx = JobContext(self, handle.id, handle._cancel)
            try:
                result = item.fn(ctx)
            except JobCancelled:
                self._bridge.cancelled.emit(handle.id)
            except Exception as exc:  # noqa: BLE001 - every error goes back to the GUI
                if not isinstance(exc, CadenzaError):
                    log.error("job %s failed:\n%s", handle.label, traceback.format_exc())
                self._bridge.failed.emit(handle.id, exc)
            else:
                if handle.cancelled:
                    self._bridge.cancelled.emit(handle.id)
                else:
                    self._bridge.finished.emit(handle.id, result)
        for key in list(self._resources):
            self._drop_resource(key)

    def _resource(self, key: Any, factory: Callable[[], Any]) -> Any:
        self._check_thread()
        if key not in self._resources:
            self._resources[key] = factory()
        return self._resources[key]

    def _drop_resource(self, key: Any) -> None:
        self._check_thread()
        res = self._resources.pop(key, None)
        close = getattr(res, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing must not break the queue
                log.exception("closing %r failed", key)

    def _check_thread(self) -> None:
        if threading.current_thread() is not self._thread:
            raise RuntimeError("worker resources are only touched from the worker thread")

    # ------------------------------------------------------------------ GUI-thread dispatch
    @Slot(int, float, str)
    def _on_progress(self, job_id: int, fraction: float, text: str) -> None:
        item = self._pending.get(job_id)
        if item is not None and item.on_progress is not None:
            item.on_progress(None if fraction < 0 else fraction, text)

    def _finish(self, job_id: int) -> _Pending | None:
        item = self._pending.pop(job_id, None)
        if item is not None:
            item.handle.done = True
        if not self._pending:
            self.busy_changed.emit(False)
        return item

    @Slot(int, object)
    def _on_finished(self, job_id: int, result: object) -> None:
        item = self._finish(job_id)
        if item is None:
            return
        if item.handle.cancelled:
            # Cancelled after the job ended but before its result reached this thread: the
            # user asked for no result, so none arrives.
            if item.on_cancelled is not None:
                item.on_cancelled()
        elif item.on_success is not None:
            item.on_success(result)

    @Slot(int, object)
    def _on_failed(self, job_id: int, exc: object) -> None:
        item = self._finish(job_id)
        if item is None:
            return
        if item.on_failure is not None:
            item.on_failure(exc)  # type: ignore[arg-type]
        else:
            log.error("job %s failed: %s", item.handle.label, exc)

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        item = self._finish(job_id)
        if item is not None and item.on_cancelled is not None:
            item.on_cancelled()


# ---------------------------------------------------------------------- standard jobs
def probe_compute(preference: str = "auto") -> Job:
    """A job that imports the Keras backend (on the worker thread) and names the device.

    ``preference`` is the setting: ``auto``, ``cpu`` or ``gpu``. Returns ``"GPU: name"`` or
    ``"CPU"`` (``"CPU (no GPU found)"`` when a GPU was asked for and none is there).
    """

    def job(ctx: JobContext) -> str:
        ctx.progress(None, "Loading the compute backend…")
        from models import compute

        if preference == "cpu":
            compute.force_cpu()
            os.environ["CADENZA_DEVICE"] = "cpu"
        devices = compute.compute_devices()
        if preference == "cpu":
            return "CPU"
        gpus = [d for d in devices if d.startswith("GPU")]
        if gpus:
            return gpus[0]
        return "CPU (no GPU found)" if preference == "gpu" else "CPU"

    return job


def list_models(ctx: JobContext) -> list[Any]:
    """A job: the installed models (``models.registry.ModelEntry``), listed on the worker;
    broken folders come too, marked (``entry.broken``: why), never to be loaded."""
    return [e for e in ctx.registry().list() if e.has_weights or e.broken]


def render_sequence(seq: Any, tail: float = 1.0) -> Job:
    """A job: the sequence rendered to ``Audio`` by the worker's renderer."""

    def job(ctx: JobContext) -> Any:
        ctx.progress(None, "Rendering…")
        renderer = ctx.renderer()
        ctx.raise_if_cancelled()
        return renderer.render(seq, tail=tail)

    return job


def set_soundfont(worker: Worker, path: str) -> JobHandle:
    """Use another soundfont: the renderer is closed (in the worker) and rebuilt on next use."""
    worker.soundfont = path

    def job(ctx: JobContext) -> None:
        ctx.drop_resource("renderer")

    return worker.submit(job, label="set soundfont")
