"""PerformanceRNN: encoding against note_seq, controls, data, a tiny trained model, CLI."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from models.errors import CadenzaError
from models.midi_io import read_midi, write_midi
from models.performance_rnn import data as data_lib
from models.performance_rnn import encoding as enc
from models.sequence import ControlChange, Note, NoteSequence
from tests.models import card_text

# note_seq (the reference) ships protobuf code generated for an older protobuf.
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")


def _note_seq():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import note_seq
    return note_seq


def _from_proto(ns) -> NoteSequence:
    return NoteSequence(
        notes=[Note(n.pitch, n.velocity, n.start_time, n.end_time, n.program, n.is_drum,
                    n.instrument) for n in ns.notes],
        control_changes=[ControlChange(c.time, c.control_number, c.control_value, c.instrument,
                                       c.program, c.is_drum) for c in ns.control_changes],
    )


def _pick(files: list[Path], count: int) -> list[Path]:
    """``count`` files spread over the smaller two thirds (by size) of ``files``."""
    by_size = sorted(files, key=lambda p: p.stat().st_size)[: max(count, len(files) * 2 // 3)]
    step = max(1, len(by_size) // count)
    return by_size[::step][:count]


@pytest.fixture(scope="module")
def piano(datasets_dir: Path) -> Path:
    return datasets_dir / "piano"


@pytest.fixture(scope="module")
def real_files(piano: Path) -> list[Path]:
    asap = _pick(sorted((piano / "asap").rglob("*.mid")), 11)
    pop = _pick(sorted((piano / "pop909").glob("*.mid")), 11)
    return asap + pop


# ------------------------------------------------------------------------------ encoding
def test_encoding_matches_note_seq_event_for_event(real_files: list[Path]) -> None:
    note_seq = _note_seq()
    from note_seq import performance_lib, sequences_lib

    one_hot = note_seq.PerformanceOneHotEncoding(num_velocity_bins=32)
    assert one_hot.num_classes == enc.NUM_CLASSES
    checked = 0
    for path in real_files:
        ns = note_seq.midi_file_to_note_sequence(str(path))
        sustained = sequences_lib.apply_sustain_control_changes(ns)
        quantized = sequences_lib.quantize_note_sequence_absolute(sustained, 100)
        perf = performance_lib.Performance(quantized, num_velocity_bins=32)
        reference = np.asarray([one_hot.encode_event(e) for e in perf])

        ours = _from_proto(ns)
        ours_sustained = ours.apply_sustain()
        assert sorted((n.pitch, n.start, n.end, n.velocity) for n in ours_sustained.notes) == \
            sorted((n.pitch, n.start_time, n.end_time, n.velocity) for n in sustained.notes), path
        events = enc.encode(ours)
        assert events.shape == reference.shape, path
        assert np.array_equal(events, reference), f"{path}: first difference at " \
            f"{int(np.argmax(events != reference))}"
        checked += 1
    assert checked >= 20
    assert {p.parent.name for p in real_files} >= {"pop909"}


def test_decoding_gives_back_the_notes(real_files: list[Path]) -> None:
    for path in real_files[::3]:
        seq = read_midi(path)
        seq.notes = [n for n in seq.notes if not n.is_drum]
        sustained = seq.apply_sustain()
        back = enc.decode(enc.encode(seq))
        assert len(back.notes) == len(sustained.notes)
        onsets = sorted((n.pitch, enc.quantize(n.start), enc.velocity_to_bin(n.velocity))
                        for n in sustained.notes)
        assert sorted((n.pitch, round(n.start * 100), enc.velocity_to_bin(n.velocity))
                      for n in back.notes) == onsets
        # Starts are within 5 ms (the onsets above); ends within 10 ms, per pitch, as
        # overlapping same-pitch notes are paired first-in first-out.
        ends_a: dict[int, list[float]] = {}
        ends_b: dict[int, list[float]] = {}
        for n in sustained.notes:
            ends_a.setdefault(n.pitch, []).append(max(n.end, n.start + 0.01))
        for n in back.notes:
            ends_b.setdefault(n.pitch, []).append(n.end)
        for pitch, ends in ends_a.items():
            assert np.allclose(sorted(ends), sorted(ends_b[pitch]), atol=0.0101), (path, pitch)


def test_vocabulary_order_and_long_gaps() -> None:
    seq = NoteSequence(notes=[Note(60, 100, 0.0, 0.5), Note(62, 20, 2.75, 3.0)])
    events = enc.encode(seq).tolist()
    v100 = enc.VELOCITY + enc.velocity_to_bin(100) - 1  # bin 25
    v20 = enc.VELOCITY + enc.velocity_to_bin(20) - 1  # bin 5
    assert (v100, v20) == (380, 360)
    # on 60, 0.5 s, off 60, a 2.25 s gap as 1 s + 1 s + 0.25 s, on 62, 0.25 s, off 62
    assert events == [v100, 60, 256 + 49, 128 + 60, 355, 355, 256 + 24, v20, 62, 256 + 24,
                      128 + 62]
    assert enc.events_duration_steps(np.asarray(events)) == 300


# ------------------------------------------------------------------------------ controls
def test_controls_on_a_hand_made_sequence() -> None:
    # C, E, G, C, E, G ... four notes per second for 6 s, each 0.25 s long.
    pitches = [60, 64, 67]
    notes = [Note(pitches[i % 3], 80, i * 0.25, (i + 1) * 0.25) for i in range(24)]
    events = enc.encode(NoteSequence(notes=notes))
    density = enc.note_density(events)
    assert density[0] == pytest.approx(4.0)  # 12 onsets in the first 3 s
    hist = enc.normalize_histogram(enc.pitch_histogram(events))
    # First 5 s: 20 notes, C and E 7 times, G 6 times, 0.25 s each; a prior of 0.01 everywhere.
    expected = np.full(12, 0.01)
    expected[[0, 4, 7]] += [1.75, 1.75, 1.5]
    assert hist[0] == pytest.approx(expected / expected.sum(), abs=1e-6)
    controls = enc.controls_from_events(events)
    assert controls.shape == (len(events), enc.CONTROL_SIZE)
    assert controls[0, 0] == 0.0 and controls[0, 1 + 3] == 1.0  # density bin [4, 8)
    off = enc.controls_from_events(events, enabled=False)
    assert (off[:, 0] == 1).all() and (off[:, 1:] == 0).all()
    # Near the end the window is cut short: the last onset sees only its own 0.25 s.
    assert density[-2] == pytest.approx(4.0)

    # And the whole control sequences agree with note_seq's control signals.
    note_seq = _note_seq()
    from note_seq import performance_controls, performance_lib, sequences_lib

    proto = note_seq.NoteSequence()
    for n in notes:
        proto.notes.add(pitch=n.pitch, velocity=n.velocity, start_time=n.start, end_time=n.end)
    proto.total_time = 6.0
    perf = performance_lib.Performance(
        sequences_lib.quantize_note_sequence_absolute(proto, 100), num_velocity_bins=32)
    ref_density = performance_controls.NoteDensityPerformanceControlSignal(
        3.0, list(enc.DENSITY_BIN_RANGES)).extract(perf)
    ref_hist = performance_controls.PitchHistogramPerformanceControlSignal(5.0).extract(perf)
    assert np.allclose(density, ref_density)
    assert np.allclose(enc.pitch_histogram(events), ref_hist)


def test_controls_match_note_seq_on_a_real_file(real_files: list[Path]) -> None:
    note_seq = _note_seq()
    from note_seq import performance_controls, performance_lib, sequences_lib

    ns = note_seq.midi_file_to_note_sequence(str(real_files[-1]))
    perf = performance_lib.Performance(sequences_lib.quantize_note_sequence_absolute(
        sequences_lib.apply_sustain_control_changes(ns), 100), num_velocity_bins=32)
    events = enc.encode(_from_proto(ns))[:1500]
    perf._events = perf._events[:1500]  # noqa: SLF001 - the reference on the same prefix
    ref_density = performance_controls.NoteDensityPerformanceControlSignal(
        3.0, list(enc.DENSITY_BIN_RANGES)).extract(perf)
    ref_hist = performance_controls.PitchHistogramPerformanceControlSignal(5.0).extract(perf)
    assert np.allclose(enc.note_density(events), ref_density)
    assert np.allclose(enc.pitch_histogram(events), ref_hist)


def test_generation_controls_from_user_settings() -> None:
    c_major = enc.key_histogram("C major")
    assert c_major[0] == 2 and c_major[[2, 4, 5, 7, 9, 11]].tolist() == [1] * 6
    assert c_major[[1, 3, 6, 8, 10]].sum() == 0
    assert enc.key_histogram("A minor").nonzero()[0].tolist() == [0, 2, 4, 5, 7, 9, 11]
    vec = enc.control_vector(density=10.0, histogram="G major")
    assert vec[0] == 0 and vec[1 + 4] == 1 and vec[1 + 8:].sum() == pytest.approx(1.0)
    assert enc.control_vector()[0] == 1 and enc.control_vector()[1:].sum() == 0
    with pytest.raises(ValueError):
        enc.key_histogram("H major")


# ------------------------------------------------------------------------------ data
def test_split_keeps_every_piece_on_one_side(piano: Path) -> None:
    files = data_lib.find_midi_files(piano)
    pieces = data_lib.piece_ids(files, piano)
    train, val = data_lib.split_by_piece(files, piano)
    assert len(train) + len(val) == len(files) and val and train
    side = {}
    for f, p in zip(files, pieces, strict=True):
        side.setdefault(p, set()).add(f in set(val))
    assert all(len(s) == 1 for s in side.values())
    # ASAP pieces with several performances really are grouped (e.g. Bach's Fugue BWV 848).
    bwv848 = [f for f, p in zip(files, pieces, strict=True) if p.endswith("Fugue/bwv_848")]
    assert len(bwv848) >= 3
    assert sum(p.startswith("asap/") for p in set(pieces)) < sum(
        "/asap/" in str(f) for f in files)
    # POP909: one song, one piece.
    assert len({p for p in pieces if "pop909" in p}) == sum("pop909" in str(f) for f in files)


def test_cache_hit_on_the_second_run(real_files: list[Path], tmp_path: Path) -> None:
    files = real_files[:6]
    t0 = time.perf_counter()
    first = data_lib.load_encoded(files, tmp_path)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = data_lib.load_encoded(files, tmp_path)
    warm = time.perf_counter() - t0
    assert len(list(tmp_path.glob("events-*.npz"))) == 1
    assert warm < cold / 5, (cold, warm)
    assert second.names == first.names
    assert all(np.array_equal(a, b) for a, b in zip(first.events, second.events, strict=True))
    # Another file list is another cache entry.
    data_lib.load_encoded(files[:3], tmp_path)
    assert len(list(tmp_path.glob("events-*.npz"))) == 2


def test_augmentation_stays_within_bounds(real_files: list[Path]) -> None:
    events = enc.encode(read_midi(real_files[2]))[:600]
    original = enc.decode(events)
    duration = enc.events_duration_steps(events)
    aug = data_lib.Augment(transpose=3, stretch=0.05)
    shifts, ratios = set(), []
    for seed in range(40):
        out, _ = aug.apply(events, np.random.default_rng(seed))
        back = enc.decode(out)
        assert len(back.notes) == len(original.notes)
        delta = set(np.subtract(sorted(n.pitch for n in back.notes),
                                sorted(n.pitch for n in original.notes)).tolist())
        assert len(delta) == 1
        shifts |= delta
        ratios.append(enc.events_duration_steps(out) / duration)
    assert shifts <= set(range(-3, 4)) and len(shifts) >= 4
    assert 0.95 - 0.002 <= min(ratios) and max(ratios) <= 1.05 + 0.002
    assert max(ratios) - min(ratios) > 0.04
    # Stretch keeps every event within half a step of the scaled time.
    stretched = enc.stretch_events(events, 1.05)
    keep = ~enc.is_time_shift(events)
    steps_in = np.cumsum(enc.shift_steps(events))[keep]
    steps_out = np.cumsum(enc.shift_steps(stretched))[~enc.is_time_shift(stretched)]
    assert np.abs(steps_out - steps_in * 1.05).max() <= 0.5 + 1e-9


def test_windows_have_the_right_shapes_and_conditioning_dropout(real_files: list[Path]) -> None:
    encoded = data_lib.EncodedSet([str(f) for f in real_files[:3]],
                                  [enc.encode(read_midi(f)) for f in real_files[:3]])
    sampler = data_lib.WindowSampler(encoded, 64, data_lib.Augment(), cond_drop=0.5, seed=3)
    (x, c), y = sampler.batch(32, np.random.default_rng(0))
    assert x.shape == y.shape == (32, 64) and c.shape == (32, 64, enc.CONTROL_SIZE)
    assert np.array_equal(x[:, 1:], y[:, :-1])
    off = c[:, 0, 0] == 1
    assert 4 <= off.sum() <= 28  # about half
    assert np.allclose(c[~off, :, 1 + enc.NUM_DENSITY_BINS:].sum(-1), 1.0, atol=1e-5)


# ------------------------------------------------------------------------------ tiny model
@pytest.fixture(scope="module")
def trained(real_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 1 x 32 LSTM trained for 40 steps on a few real files (symlinked, not copied)."""
    from models.performance_rnn.train import train

    root = tmp_path_factory.mktemp("perf")
    data_dir = root / "data"
    data_dir.mkdir()
    for f in real_files[11:16]:
        (data_dir / f.name).symlink_to(f)
    out = root / "models" / "tiny-perf"
    first = train(data_dir, out, config_name="tiny", steps=20, checkpoint_steps=20,
                  learning_rate=1e-2, val_windows=4, verbose=0, log=lambda s: None)
    second = train(data_dir, out, config_name="tiny", steps=40, checkpoint_steps=20,
                   val_windows=4, verbose=0, log=lambda s: None)
    return {"data": data_dir, "out": out, "root": root / "models", "first": first,
            "second": second}


def test_training_lowers_the_loss_and_resumes(trained: dict) -> None:
    first, second = trained["first"], trained["second"]
    assert first.step == 20 and second.step == 40
    history = json.loads((trained["out"] / "history.json").read_text())
    assert [r["start_step"] for r in history["runs"]] == [0, 20]
    losses = [c["val_nll"] for c in history["checkpoints"]]
    # Uniform guessing is log(388) = 5.96 nats; 40 steps get well below it. (Between the two
    # checkpoints the 4-window validation NLL is on a plateau and may move either way.)
    assert losses[0] < math.log(388) + 0.1
    assert losses[-1] < math.log(388) - 0.5
    config = json.loads((trained["out"] / "config.json").read_text())
    assert config["family"] == "performance" and config["config"]["layers"] == [32]
    assert "learning_rate" not in config["config"]  # the architecture alone
    # Training settings are the run's, kept from the first run.
    assert [r["settings"]["learning_rate"] for r in history["runs"]] == [1e-2, 1e-2]
    card = card_text(trained["out"])
    assert "CC BY-NC-SA 4.0" in card and "MIT" in card and "Steps: 40" in card


def test_warm_start_keeps_the_weights_and_restarts_a_decaying_rate(trained: dict,
                                                                   tmp_path: Path) -> None:
    """--init: the starting folder's architecture and weights, a fresh optimizer at step 0, the
    given training settings; the per-step decay is resumed with the optimizer state."""
    from keras import ops

    from models.performance_rnn.model import get_training, load_model
    from models.performance_rnn.train import compile_model, train
    from models.training import load_state

    out = tmp_path / "warm"
    first = train(trained["data"], out, steps=4, checkpoint_steps=4, batch_size=4,
                  learning_rate=5e-3, lr_decay=0.5, val_windows=4, verbose=0,
                  log=lambda s: None, init_from=trained["out"])
    assert first.step == 4
    # The warm model starts where the tiny run ended, far below a fresh model's log(388).
    assert first.val_nll < trained["second"].val_nll + 0.2 < math.log(388) - 0.3
    assert json.loads((out / "config.json").read_text())["config"]["layers"] == [32]
    history = json.loads((out / "history.json").read_text())
    saved = history["runs"][0]["settings"]
    assert saved["batch_size"] == 4 and saved["seq_len"] == 64  # the rest from the folder
    assert saved["learning_rate"] == pytest.approx(5e-3) and saved["lr_decay"] == 0.5
    assert history["runs"][0]["start_step"] == 0
    assert history["runs"][0]["init_from"] == str(trained["out"])
    assert "x 0.5 per step" in card_text(out)
    # The card lists the starting folder's commands (a run, then its resumption), then this one.
    code = [line.strip() for line in (out / "MODEL_CARD.md").read_text().splitlines()
            if line.startswith("    ")]
    made_by = [run["command"] for run in
               json.loads((trained["out"] / "history.json").read_text())["runs"]]
    assert len(made_by) == 2 and len(code) == 3
    assert code[0] == made_by[0] and code[1] == f"{made_by[1]}  # resumed at step 20"
    assert code[2].endswith(f"# warm start from {trained['out']} (fresh optimizer, step 0)")

    said: list[str] = []
    train(trained["data"], out, steps=6, checkpoint_steps=2, val_windows=4, verbose=0,
          learning_rate=1e-2, lr_decay=0.5, log=said.append,
          init_from=trained["out"])  # resumes: --init and the new rate are not used, and it says so
    assert any("--init" in line and "not used" in line for line in said)
    assert any("learning_rate 0.005" in line and "--learning-rate 0.01 is not used" in line
               for line in said)
    assert not any("--lr-decay" in line for line in said)  # the same as the run's: nothing to say
    model = load_model(out)
    compile_model(model, get_training("tiny", learning_rate=5e-3, lr_decay=0.5))
    optimizer = model.keras_model.optimizer
    assert load_state(out, model.keras_model, optimizer) == 6
    assert int(ops.convert_to_numpy(optimizer.iterations)) == 6
    assert float(ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(5e-3 * 0.5 ** 6)

    # The same optimizer as the starting folder's (its file holds optimizer variables): still a
    # fresh one.
    again = train(trained["data"], tmp_path / "warm-constant", steps=2, checkpoint_steps=2,
                  val_windows=4, verbose=0, log=lambda s: None, init_from=trained["out"])
    assert again.step == 2


def test_card_commands_name_a_run_s_backend_when_not_tensorflow() -> None:
    """A run resumed on JAX is shown with the environment variable that makes it reproducible."""
    from models.training import command_lines

    cmd = "cadenza train performance --data D --out O"
    history = {"lineage": [{"command": "cadenza train performance --data D --out P",
                            "start_step": 0, "backend": "tensorflow"}],
               "runs": [{"command": f"{cmd} --init P", "start_step": 0, "backend": "tensorflow",
                         "init_from": "P"},
                        {"command": f"{cmd} --init P", "start_step": 200, "backend": "jax"},
                        {"command": cmd, "start_step": 400}]}  # older files: no backend kept
    assert command_lines(history) == [
        "cadenza train performance --data D --out P",
        f"{cmd} --init P  # warm start from P (fresh optimizer, step 0)",
        f"KERAS_BACKEND=jax {cmd} --init P  # resumed at step 200",
        f"{cmd}  # resumed at step 400",
    ]


def test_warm_start_refuses_another_family_and_a_bad_decay(tmp_path: Path, trained: dict) -> None:
    from models.performance_rnn.train import train

    other = tmp_path / "vae"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"family": "music_vae", "config": {}}))
    with pytest.raises(CadenzaError, match="not 'performance'"):
        train(trained["data"], tmp_path / "out", steps=2, verbose=0, log=lambda s: None,
              init_from=other)
    with pytest.raises(CadenzaError, match="--lr-decay"):
        train(trained["data"], tmp_path / "out", steps=2, verbose=0, log=lambda s: None,
              lr_decay=1.5)


def test_training_is_reproducible_from_its_seed(trained: dict, tmp_path: Path) -> None:
    """Same seed, same weights after a few steps (initial weights and windows); another seed,
    other weights."""
    import h5py

    from models.performance_rnn.train import train

    def weights(name: str, seed: int) -> list[np.ndarray]:
        out = tmp_path / name
        train(trained["data"], out, config_name="tiny", steps=3, checkpoint_steps=3,
              val_windows=2, verbose=0, log=lambda s: None, seed=seed)
        with h5py.File(out / "model.weights.h5") as f:
            found: list[np.ndarray] = []
            f.visititems(lambda _, v: found.append(np.asarray(v))
                         if isinstance(v, h5py.Dataset) else None)
        return found

    a, b, c = weights("a", 7), weights("b", 7), weights("c", 8)
    assert len(a) == len(b) > 0
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_save_load_through_the_registry_gives_identical_logits(trained: dict) -> None:
    from models.performance_rnn.model import build_model, load_model
    from models.registry import ModelRegistry

    model = ModelRegistry([trained["root"]]).load("tiny-perf", "performance")
    assert (model.name, model.family, model.path) == ("tiny-perf", "performance", trained["out"])
    again = load_model(trained["out"])
    events = np.asarray([[356 + 20, 60, 270, 188, 300, 64]], np.int32)
    controls = enc.controls_from_events(events[0])[None]
    a, b = model.network.logits(events, controls), again.logits(events, controls)
    assert np.array_equal(a, b)
    fresh = build_model(model.config)
    assert not np.allclose(fresh.logits(events, controls), a)


@pytest.fixture(scope="module")
def model(trained: dict):
    from models.performance_rnn import load_from_dir

    return load_from_dir(trained["out"])


@pytest.fixture(scope="module")
def primer(real_files: list[Path]) -> NoteSequence:
    return read_midi(real_files[12]).trim(0.0, 4.0)


def test_numpy_and_keras_paths_agree(model, primer: NoteSequence) -> None:
    from models.performance_rnn.generate import Continuer, KerasEngine, NumpyEngine

    events = enc.encode(primer)[:80]
    controls = enc.controls_from_events(events)
    reference = model.network.logits(events[None], controls[None])[0]
    network = model.network
    assert np.abs(NumpyEngine(network).sequence_logits(events, controls) - reference).max() < 1e-4
    assert np.abs(KerasEngine(network).sequence_logits(events, controls) - reference).max() < 1e-4
    fast, portable = Continuer(model, "numpy"), Continuer(model, "keras")
    fast.prime(primer)
    portable.prime(primer)
    a = fast.generate_detailed(1.5, variations=2, seed=11)
    b = portable.generate_detailed(1.5, variations=2, seed=11)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.events, y.events)


def test_generation_variations_seeds_and_closed_notes(model, primer: NoteSequence) -> None:
    from models.performance_rnn.generate import Continuer

    session = Continuer(model)
    session.prime(primer)
    assert session.primer_end == pytest.approx(primer.apply_sustain().total_time, abs=0.011)
    takes = session.generate(3.0, variations=3, seed=5, temperature=1.2)
    assert len(takes) == 3
    assert len({tuple((n.pitch, n.start) for n in t.notes) for t in takes}) == 3
    again = session.generate(3.0, variations=3, seed=5, temperature=1.2)
    assert [t.notes for t in takes] == [t.notes for t in again]
    for take in takes:
        assert take.notes
        for n in take.notes:  # every note is closed inside the continuation
            assert 0 <= n.start < n.end <= 3.0 + 1e-9
    nucleus = session.generate(2.0, seed=1, top_p=0.5, density=8.0, pitch_histogram="C major")
    assert nucleus[0].total_time <= 2.0 + 1e-9
    # A note left sounding by the events is closed at the end.
    assert [(n.pitch, n.end) for n in enc.decode([60, 356 + 10, 62, 299]).notes] == \
        [(60, 0.44), (62, 0.44)]


def test_beam_search_returns_a_valid_sequence(model, primer: NoteSequence) -> None:
    from models.performance_rnn.generate import Continuer

    session = Continuer(model)
    session.prime(primer)
    plain = session.generate_detailed(1.0, seed=2)[0]
    beam = session.generate_detailed(1.0, seed=2, beam_size=3, branch_factor=2,
                                     steps_per_iteration=4)[0]
    assert enc.events_duration_steps(beam.events) == 100
    assert ((beam.events >= 0) & (beam.events < enc.NUM_CLASSES)).all()
    assert all(0 <= n.start < n.end <= 1.0 + 1e-9 for n in beam.continuation.notes)
    assert beam.log_likelihood / len(beam.events) >= plain.log_likelihood / len(plain.events) - 1


def test_evaluate_reports_sane_json(model, trained: dict) -> None:
    from models.performance_rnn.evaluate import evaluate_dir

    result = evaluate_dir(model, trained["data"])
    assert {"nll_per_event", "accuracy", "events", "files"} <= set(result)
    assert 0 < result["nll_per_event"] < math.log(388)
    assert 0 <= result["accuracy"] <= 1
    assert result["files"] == 5 and result["events"] > 1000


# ------------------------------------------------------------------------------ CLI
def test_cli_continue_writes_primer_plus_continuation(trained: dict, primer: NoteSequence,
                                                      tmp_path: Path, capsys) -> None:
    from app.cli import main

    primer_path = tmp_path / "primer.mid"
    write_midi(primer, primer_path)
    out = tmp_path / "out.mid"
    code = main(["continue", str(primer_path), "-o", str(out), "--seconds", "2", "--seed", "3",
                 "--model", str(trained["out"])])
    assert code == 0
    written = read_midi(out)
    n_primer = len(read_midi(primer_path).notes)
    assert len(written.notes) > n_primer
    assert written.total_time > 4.0
    code = main(["continue", str(primer_path), "-o", str(out), "--seconds", "1", "--seed", "3",
                 "--variations", "2", "--continuation-only", "--model", str(trained["out"])])
    assert code == 0
    assert (tmp_path / "out-1.mid").is_file() and (tmp_path / "out-2.mid").is_file()
    capsys.readouterr()

    bad = tmp_path / "bad.mid"
    bad.write_text("this is not MIDI")
    code = main(["continue", str(bad), "-o", str(tmp_path / "x.mid"), "--model",
                 str(trained["out"])])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cadenza: error:") and err.count("\n") == 1


# ------------------------------------------------------------------------------ shipped model
@pytest.mark.slow
def test_shipped_model_continues_with_musical_density(piano: Path, artifacts_dir: Path) -> None:
    """Listening proxy: 10 s after an 8 s held-out primer: notes, no silence, no stuck note."""
    from models.audio_io import write_audio
    from models.performance_rnn.generate import Continuer
    from models.registry import SHIPPED_DIR, ModelRegistry
    from models.render import Renderer

    model = ModelRegistry([SHIPPED_DIR]).load("performance-small")
    files = data_lib.find_midi_files(piano)
    _, val = data_lib.split_by_piece(files, piano)
    primer = read_midi(next(f for f in val if "pop909" in str(f))).trim(0.0, 8.0)
    session = Continuer(model)
    session.prime(primer)
    detailed = session.generate_detailed(10.0, seed=1, temperature=1.0)[0]
    take = detailed.continuation
    raw = enc.decode(detailed.events)  # before Magenta's 5 s cap on generated notes
    onsets = sorted(n.start for n in take.notes)
    notes_per_second = len(onsets) / 10.0
    longest = max(n.end - n.start for n in take.notes)
    raw_lengths = np.asarray([n.end - n.start for n in raw.notes])
    silent = max(np.diff([0.0, *onsets, 10.0]))
    joined = primer.copy()
    joined.notes += take.shift(session.primer_end).notes
    with Renderer() as renderer:
        write_audio(artifacts_dir / "continue-example.wav", renderer.render(joined.sorted()))
    (artifacts_dir / "continue-example.json").write_text(json.dumps(
        {"notes_per_second": notes_per_second, "max_note_seconds": longest,
         "max_note_seconds_uncapped": float(raw_lengths.max()),
         "notes_over_5s_uncapped": int((raw_lengths > 5.0).sum()), "notes": len(onsets),
         "longest_silence_seconds": silent}))
    assert 1.0 <= notes_per_second <= 40.0
    assert longest <= 5.0 + 1e-9
    # Without the cap, the shipped model (1000 CPU steps) leaves ~17% of notes hanging past 5 s
    # (11 of 63 with this seed): a known weakness; most notes must still be released.
    assert (raw_lengths > 5.0).mean() < 0.5
    assert silent < 3.0


def test_feeding_events_equals_priming_on_the_whole(model, primer: NoteSequence) -> None:
    from models.performance_rnn.generate import Continuer

    events = enc.encode(primer)
    whole, pieces = Continuer(model), Continuer(model)
    whole.primer_events = events
    whole._prime_with(enc.control_vector())  # noqa: SLF001
    pieces.primer_events = events[:40]
    pieces._prime_with(enc.control_vector())  # noqa: SLF001
    pieces.feed(events[40:])
    assert np.abs(pieces._last_logits - whole._last_logits).max() < 1e-4  # noqa: SLF001
    assert pieces.generate(1.0, seed=4)[0].notes == whole.generate(1.0, seed=4)[0].notes


def test_a_take_at_the_session_tempo_keeps_its_seconds_and_metre() -> None:
    """``Continuation.at_tempo``: one tempo in both the joined take and the continuation, every
    note where it was; the joined take keeps the primer's time signatures, the continuation
    alone starts with the one in force where the primer ends."""
    from models.performance_rnn.generate import Continuation, join
    from models.sequence import TempoChange, TimeSignature

    primer = NoteSequence(notes=[Note(60, 80, 0.0, 1.0), Note(62, 80, 2.5, 2.9)],
                          tempos=[TempoChange(0.0, 120.0), TempoChange(1.0, 80.0)],
                          time_signatures=[TimeSignature(0.0, 3, 4), TimeSignature(2.0, 6, 8)])
    continuation = NoteSequence(notes=[Note(64, 70, 0.05, 0.4), Note(65, 70, 0.7, 1.3)])
    take = Continuation(np.zeros(3, np.int64), continuation, -1.0, 3.0,
                        join(primer, continuation, 3.0))
    timed = take.at_tempo(96.0)
    for seq in (timed.joined, timed.continuation):
        assert [(t.time, t.qpm) for t in seq.tempos] == [(0.0, 96.0)]
    assert [(n.pitch, n.start, n.end) for n in timed.joined.notes] == \
        [(n.pitch, n.start, n.end) for n in take.joined.notes]
    assert [(n.pitch, n.start, n.end) for n in timed.continuation.notes] == \
        [(n.pitch, n.start, n.end) for n in continuation.notes]
    assert timed.joined.time_signatures == primer.time_signatures
    assert [(t.time, t.numerator, t.denominator) for t in timed.continuation.time_signatures] \
        == [(0.0, 6, 8)]
    assert (timed.boundary, timed.log_likelihood) == (3.0, -1.0)
    assert take.joined.tempos[1].qpm == 80.0 and not continuation.tempos  # copies
