"""The background worker: order, thread, progress, errors, cancel, worker-owned resources."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.worker import Worker, render_sequence
from models.errors import CadenzaError
from models.sequence import Note, NoteSequence


@pytest.fixture()
def worker(qtbot):
    w = Worker()
    w.start()
    yield w
    assert w.shutdown(timeout=10)


def _wait_done(qtbot, handle, timeout=10000):
    qtbot.waitUntil(lambda: handle.done, timeout=timeout)


def test_jobs_run_in_order_on_one_background_thread(qtbot, worker):
    ran: list[tuple[int, str]] = []
    results: list[tuple[int, bool]] = []
    handles = []
    for i in range(6):
        def job(ctx, i=i):
            time.sleep(0.01 * (6 - i))  # later jobs are quicker: order must still hold
            ran.append((i, threading.current_thread().name))
            return i

        handles.append(worker.submit(
            job, on_success=lambda r: results.append(
                (r, threading.current_thread() is threading.main_thread()))))
    _wait_done(qtbot, handles[-1])
    assert [i for i, _ in ran] == list(range(6))
    assert {name for _, name in ran} == {"cadenza-worker"}
    assert results == [(i, True) for i in range(6)]  # callbacks on the GUI thread
    assert not worker.busy


def test_progress_arrives_on_the_gui_thread(qtbot, worker):
    seen: list[tuple[float | None, str, bool]] = []

    def job(ctx):
        for k in range(4):
            ctx.progress(k / 3, f"step {k}")
        ctx.progress(None, "unknown")
        return "ok"

    handle = worker.submit(job, on_progress=lambda f, text: seen.append(
        (f, text, threading.current_thread() is threading.main_thread())))
    _wait_done(qtbot, handle)
    qtbot.wait(10)
    assert [s[1] for s in seen] == ["step 0", "step 1", "step 2", "step 3", "unknown"]
    assert seen[3][0] == pytest.approx(1.0) and seen[4][0] is None
    assert all(on_gui for _, _, on_gui in seen)


def test_errors_arrive_as_on_failure_with_the_message(qtbot, worker):
    failures: list[Exception] = []
    successes: list[object] = []

    def bad(ctx):
        raise CadenzaError("broken.mid:\n  not a MIDI file")

    handle = worker.submit(bad, on_success=successes.append, on_failure=failures.append)
    _wait_done(qtbot, handle)
    assert successes == []
    assert len(failures) == 1 and isinstance(failures[0], CadenzaError)
    assert str(failures[0]) == "broken.mid: not a MIDI file"

    # an unexpected error is reported too, and the queue keeps working
    handle = worker.submit(lambda ctx: 1 / 0, on_failure=failures.append)
    _wait_done(qtbot, handle)
    assert isinstance(failures[1], ZeroDivisionError)
    handle = worker.submit(lambda ctx: 42, on_success=successes.append)
    _wait_done(qtbot, handle)
    assert successes == [42]


def test_cancel_stops_a_long_job_and_skips_queued_ones(qtbot, worker):
    started = threading.Event()
    steps: list[int] = []
    cancelled: list[str] = []
    successes: list[object] = []

    def long_job(ctx):
        started.set()
        for k in range(1000):  # 10 s if never cancelled
            if ctx.cancelled:
                return "stopped early"
            steps.append(k)
            time.sleep(0.01)
        return "finished"

    queued_ran = []
    long = worker.submit(long_job, on_success=successes.append,
                         on_cancelled=lambda: cancelled.append("long"))
    queued = worker.submit(lambda ctx: queued_ran.append(1),
                           on_cancelled=lambda: cancelled.append("queued"))
    assert started.wait(5)
    t0 = time.monotonic()
    queued.cancel()
    long.cancel()
    _wait_done(qtbot, queued)
    assert time.monotonic() - t0 < 2.0
    assert cancelled == ["long", "queued"]
    assert successes == [] and queued_ran == []
    assert len(steps) < 1000


def test_a_result_that_arrives_after_cancel_is_dropped(qtbot, worker):
    """Cancel clicked after the job ended but before its result reached the GUI thread: the
    result is not shown; on_cancelled is called instead."""
    ended = threading.Event()
    got: list[str] = []

    def job(ctx):
        ended.set()
        return "result"

    handle = worker.submit(job, on_success=lambda r: got.append(r),
                           on_cancelled=lambda: got.append("cancelled"))
    assert ended.wait(5)
    time.sleep(0.05)  # the result is queued for the GUI thread, not delivered yet
    assert got == []
    handle.cancel()
    qtbot.waitUntil(lambda: got != [], timeout=2000)
    assert got == ["cancelled"] and handle.done


def test_raise_if_cancelled_ends_the_job(qtbot, worker):
    gate = threading.Event()
    cancelled = []

    def job(ctx):
        gate.wait(5)
        ctx.raise_if_cancelled()
        return "not reached"

    handle = worker.submit(job, on_success=cancelled.append,
                           on_cancelled=lambda: cancelled.append("cancelled"))
    handle.cancel()
    gate.set()
    _wait_done(qtbot, handle)
    assert cancelled == ["cancelled"]


def test_resources_live_on_the_worker_thread(qtbot, worker):
    made: list[str] = []

    class Thing:
        closed = False

        def close(self):
            Thing.closed = True

    def factory():
        made.append(threading.current_thread().name)
        return Thing()

    got = []
    h1 = worker.submit(lambda ctx: ctx.resource("thing", factory), on_success=got.append)
    h2 = worker.submit(lambda ctx: ctx.resource("thing", factory), on_success=got.append)
    _wait_done(qtbot, h2)
    assert made == ["cadenza-worker"] and got[0] is got[1] and h1.done
    with pytest.raises(RuntimeError, match="worker thread"):
        worker._resource("thing", factory)
    h3 = worker.submit(lambda ctx: ctx.drop_resource("thing"))
    _wait_done(qtbot, h3)
    assert Thing.closed


def test_the_worker_renders_with_one_persistent_renderer(qtbot, worker):
    seq = NoteSequence(notes=[Note(60, 100, 0.0, 0.5), Note(64, 90, 0.25, 0.75)])
    out = []
    h1 = worker.submit(render_sequence(seq, tail=0.2), on_success=out.append,
                       on_failure=out.append)
    h2 = worker.submit(lambda ctx: ctx.renderer(), on_success=out.append)
    h3 = worker.submit(lambda ctx: ctx.renderer(), on_success=out.append)
    _wait_done(qtbot, h3, timeout=30000)
    assert h1.done and h2.done
    audio = out[0]
    assert not isinstance(audio, Exception), audio
    assert audio.samples.shape[0] >= int(0.75 * audio.sample_rate)
    assert float(np.abs(audio.samples).max()) > 0.01
    assert out[1] is out[2]  # the same renderer each time
