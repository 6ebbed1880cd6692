"""The Continue workspace's job on the real worker against ``cadenza continue`` in a subprocess,
both with the shipped performance-small model: one generator, the same notes, the 5 s cap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.jobs import ContinueResult, continue_job
from app.worker import Worker
from models.midi_io import read_midi, write_midi
from models.performance_rnn import encoding as enc
from models.registry import SHIPPED_DIR

ROOT = Path(__file__).resolve().parents[2]
PHRASE = ROOT / "assets" / "examples" / "piano-phrase.mid"
MODEL = "performance-small"


@pytest.fixture()
def worker(qtbot):  # noqa: ANN001, ANN201
    w = Worker()
    w.start()
    yield w
    assert w.shutdown(timeout=30)


def _run(qtbot, worker: Worker, job, timeout: int = 120_000):  # noqa: ANN001, ANN202
    out: list = []
    progress: list[float | None] = []
    handle = worker.submit(job, on_success=out.append, on_failure=out.append,
                           on_progress=lambda f, _text: progress.append(f))
    qtbot.waitUntil(lambda: handle.done, timeout=timeout)
    assert out and not isinstance(out[0], Exception), out
    return out[0], progress


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))


def _notes(seq) -> list[tuple]:  # noqa: ANN001
    return [(n.pitch, n.velocity, n.start, n.end, n.instrument, n.program, n.is_drum)
            for n in seq.sorted().notes]


def _steps(notes) -> list[tuple[int, int, int, int]]:  # noqa: ANN001
    return sorted((n.pitch, n.velocity, round(n.start * 100), round(n.end * 100)) for n in notes)


@pytest.mark.parametrize("settings", [
    {"seconds": 6.0, "variations": 2, "seed": 11, "temperature": 0.9, "key": "D minor",
     "density": 6.0, "top_p": 0.95},
    {"seconds": 2.0, "variations": 1, "seed": 5, "beam_size": 2, "branch_factor": 2},
    {"seconds": 3.0, "variations": 1, "seed": 2, "key": "off", "density": "off"},
], ids=["sampling", "beam", "unconditioned"])
def test_the_workspace_job_and_the_cli_make_the_same_notes(qtbot, worker, tmp_path, settings):
    primer = read_midi(PHRASE)
    result, progress = _run(qtbot, worker, continue_job(MODEL, primer, **settings))
    assert isinstance(result, ContinueResult) and len(result.variations) == settings["variations"]
    assert progress[-1] == 1.0 and len(progress) >= 5

    args = ["continue", str(PHRASE), "-o", str(tmp_path / "cli.mid"), "--model", MODEL,
            "--seconds", str(settings["seconds"]), "--variations", str(settings["variations"]),
            "--seed", str(settings["seed"])]
    for key, flag in (("temperature", "--temperature"), ("key", "--pitch-histogram"),
                      ("density", "--density"), ("top_p", "--top-p"),
                      ("beam_size", "--beam-size"), ("branch_factor", "--branch-factor")):
        if key in settings:
            args += [flag, str(settings[key])]
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    n = settings["variations"]
    paths = [tmp_path / "cli.mid"] if n == 1 else [tmp_path / f"cli-{i}.mid" for i in
                                                   range(1, n + 1)]
    for i, (path, take) in enumerate(zip(paths, result.variations, strict=True)):
        written = read_midi(path)
        # The job's joined take, written the way the CLI writes it, is the CLI's file exactly.
        mine = tmp_path / f"job-{i}.mid"
        write_midi(take.joined, mine)
        assert _notes(read_midi(mine)) == _notes(written)
        assert take.continuation.notes, "a continuation with notes"
        assert f"{len(take.continuation.notes)} new notes" in done.stdout.splitlines()[i]
        # and the continuation, in 10 ms steps, is the notes the CLI put after the primer
        after = [n for n in written.notes if n.start >= take.boundary - 1e-6]
        assert len(after) == len(written.notes) - len(primer.notes)
        assert _steps(after) == _steps(take.continuation.shift(take.boundary).notes)
    assert result.boundary == pytest.approx(primer.total_time, abs=0.011)


def test_no_note_of_the_workspace_job_is_longer_than_5_seconds(qtbot, worker):
    """Before the job called the model's generator it decoded its own 1 s chunks without the cap:
    this primer and seed gave 6 of its 1,260 notes longer than 5 s."""
    primer = read_midi(PHRASE)
    result, _ = _run(qtbot, worker, continue_job(MODEL, primer, seconds=20.0, variations=4,
                                                 seed=5))
    lengths = [n.end - n.start for v in result.variations for n in v.continuation.notes]
    assert len(lengths) > 200
    assert max(lengths) <= 5.0 + 1e-9
    # the cap is what keeps them there: the same events decoded without it hold longer notes
    uncapped = [n.end - n.start for v in result.variations
                for n in enc.decode(v.events).notes]
    assert max(uncapped) > 5.0
    for v in result.variations:  # the joined take: the primer as it was, then the new notes
        assert len(v.joined.notes) == len(primer.notes) + len(v.continuation.notes)
        assert _notes(primer) == _notes(type(primer)(
            notes=[n for n in v.joined.notes if n.start < v.boundary - 1e-9]))


def test_a_model_asked_for_by_name_and_by_path_is_loaded_once(qtbot, worker):
    def job(ctx):  # noqa: ANN001, ANN202
        by_name = ctx.model(MODEL, "performance")
        by_path = ctx.model(str(SHIPPED_DIR / MODEL), "performance")
        by_other_path = ctx.model(str(SHIPPED_DIR / ".." / "shipped" / MODEL))
        return by_name, by_path, by_other_path, ctx.registry().loaded()

    (a, b, c, loaded), _ = _run(qtbot, worker, job)
    assert a is b is c
    assert loaded == [(SHIPPED_DIR / MODEL).resolve()]
    failed: list = []
    handle = worker.submit(lambda ctx: ctx.model("melody-2bar", "performance"),
                           on_failure=failed.append)
    qtbot.waitUntil(lambda: handle.done, timeout=60_000)
    assert str(failed[0]) == ("model 'melody-2bar' is a MusicVAE model, not a PerformanceRNN "
                              "(performance) model")
    # a Continue job by name after a load by path: still the one model
    result, _ = _run(qtbot, worker, continue_job(MODEL, read_midi(PHRASE), seconds=1.0,
                                                 variations=1, seed=0))
    (_, _, _, after), _ = _run(qtbot, worker, job)
    assert after == loaded and result.variations


def test_cancel_stops_the_workspace_job_within_a_few_dozen_events(qtbot, worker):
    primer = read_midi(PHRASE)
    cancelled: list[bool] = []
    progress: list[float | None] = []
    handle = worker.submit(
        continue_job(MODEL, primer, seconds=600.0, variations=8, seed=0),
        on_progress=lambda f, _t: progress.append(f), on_cancelled=lambda: cancelled.append(True),
        on_success=lambda r: cancelled.append(False))
    qtbot.waitUntil(lambda: any(f and f > 0.001 for f in progress), timeout=120_000)
    handle.cancel()
    qtbot.waitUntil(lambda: handle.done, timeout=5_000)  # 600 s x 8 would take minutes
    assert cancelled == [True]
    assert max(f or 0.0 for f in progress) < 0.5


def test_the_app_leaves_encoding_sampling_and_decoding_to_the_model():
    for name in ("duet.py", "jobs.py"):
        text = (ROOT / "app" / name).read_text()
        for forbidden in ("performance_rnn.encoding", "performance_rnn import encoding",
                          "make_engine", "generate import sample", "enc.decode",
                          "load_from_dir", "load_performance_model"):
            assert forbidden not in text, (name, forbidden)


def test_continuations_follow_the_primer_by_default(qtbot, worker):
    """By default density and key come from the primer: the same notes as asking for the
    primer's own figures by hand, and other notes than with conditioning off."""
    import json

    from models.performance_rnn.follow import Following, reference_controls
    from models.registry import SHIPPED_DIR

    primer = read_midi(PHRASE)
    # as the model follows (its folder's "follow"): by hand, the same figures give the same notes
    how = Following.from_json(
        json.loads((SHIPPED_DIR / MODEL / "config.json").read_text()).get("follow"))
    ref = reference_controls(primer, how.half_life, flatten=how.flatten)
    common = {"seconds": 3.0, "variations": 1, "seed": 4}
    default, _ = _run(qtbot, worker, continue_job(MODEL, primer, **common))
    by_hand, _ = _run(qtbot, worker, continue_job(MODEL, primer, density=ref.density,
                                                  key=list(ref.histogram), **common))
    off, _ = _run(qtbot, worker, continue_job(MODEL, primer, density=None, key=None, **common))
    notes = [_steps(r.variations[0].continuation.notes) for r in (default, by_hand, off)]
    assert notes[0] == notes[1] and notes[0] != notes[2]


@pytest.mark.parametrize("flag, value", [("--density", "nan"), ("--density", "-1"),
                                         ("--density", "lots"), ("--pitch-histogram", "1,2"),
                                         ("-o", "no/such/folder/x.mid"),
                                         ("--tempo", "nan"), ("--tempo", "0"),
                                         ("--tempo", "1000")])
def test_bad_conditioning_or_output_is_one_line_at_once(tmp_path, flag, value):
    """Refused in one line before the model loads (well under the seconds a load takes)."""
    import time

    started = time.monotonic()
    done = _cli("continue", str(PHRASE), "-o", str(tmp_path / "x.mid"), flag, value)
    assert time.monotonic() - started < 4.0  # a model load alone takes longer
    assert done.returncode == 2
    assert done.stderr.startswith("cadenza: error: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "x.mid").exists()


def test_evaluate_reports_how_continuations_follow(tmp_path, datasets_dir):
    """``cadenza evaluate performance --continuations N``: the likelihood and, for N pieces,
    how continuations follow their primers next to the real continuation, in one command."""
    import json
    import shutil

    folder = tmp_path / "pieces"
    folder.mkdir()
    for name in ("001.mid", "002.mid", "003.mid"):
        shutil.copy(datasets_dir / "piano" / "pop909" / name, folder / name)
    done = _cli("evaluate", "performance", "--data", str(folder), "--model", MODEL,
                "--continuations", "2")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["files"] == 3 and result["nll_per_event"] > 0
    follow = result["continuations"]
    assert follow["pieces"] == 2
    for side in ("real", "generated", "primer"):
        figures = follow[side]
        assert 0 <= figures["in_key"] <= 1 and figures["notes_per_second"] > 0
        assert 0 < figures["median_note_seconds"] < 5
    assert follow["primer"]["pc_divergence"] == 0.0
    bad = _cli("evaluate", "performance", "--data", str(folder), "--continuations", "-3")
    assert bad.returncode == 2 and bad.stderr.startswith("cadenza: error: --continuations")


def test_cli_takes_at_the_session_tempo_keep_their_seconds(tmp_path):
    """``--tempo 96``: the file has one tempo, 96 BPM, and the primer's time signature; every
    note (the primer's and the continuation's) sounds at the second it does without it."""
    import mido

    primer = read_midi(PHRASE)
    assert primer.qpm != 96.0
    common = ["continue", str(PHRASE), "--model", MODEL, "--seconds", "3", "--seed", "5"]
    done = _cli(*common, "-o", str(tmp_path / "plain.mid"))
    assert done.returncode == 0, done.stderr
    done = _cli(*common, "-o", str(tmp_path / "t.mid"), "--tempo", "96")
    assert done.returncode == 0, done.stderr
    plain, timed = read_midi(tmp_path / "plain.mid"), read_midi(tmp_path / "t.mid")
    assert [(t.time, t.qpm) for t in timed.tempos] == [(0.0, 96.0)]
    assert [m.tempo for track in mido.MidiFile(tmp_path / "t.mid").tracks for m in track
            if m.type == "set_tempo"] == [625_000]
    assert [(t.numerator, t.denominator) for t in timed.time_signatures] == \
        [(t.numerator, t.denominator) for t in primer.time_signatures]
    assert len(timed.notes) == len(plain.notes) > len(primer.notes)
    tick = max(60.0 / 96.0, 60.0 / plain.qpm) / 480  # a tick of either file
    def order(seq):  # noqa: ANN001, ANN202 - by pitch: rounding to ticks may swap close onsets
        return sorted(seq.notes, key=lambda n: (n.pitch, n.start))

    for a, b in zip(order(plain), order(timed), strict=True):
        assert (a.pitch, a.velocity) == (b.pitch, b.velocity)
        assert b.start == pytest.approx(a.start, abs=tick)
        assert b.end == pytest.approx(a.end, abs=tick)
