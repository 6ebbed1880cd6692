"""``cadenza sample`` / ``interpolate`` / ``evaluate`` in-process with tiny model folders."""

from __future__ import annotations

import json

import mido
import pytest

from app.cli import main
from models.midi_io import read_midi

# The tiny training fixture is a few seconds alone, minutes on a CPU shared with other trainings.
pytestmark = pytest.mark.timeout(900)


def test_sample_writes_one_window_after_another(tiny_melody, tmp_path, capsys):
    out = tmp_path / "samples.mid"
    code = main(["sample", "--model", str(tiny_melody), "-n", "3", "-o", str(out),
                 "--temperature", "0.8", "--seed", "4"])
    assert code == 0
    seq = read_midi(out)
    assert seq.notes and max(n.start for n in seq.notes) < 3 * 4.0  # 3 x 2 bars at 120 qpm
    assert max(n.start for n in seq.notes) >= 4.0  # the later samples follow the first


def test_interpolate_writes_the_steps_in_order(tiny_melody, nottingham_subset, tmp_path):
    files = sorted(nottingham_subset.glob("*.mid"))
    out = tmp_path / "morph.mid"
    code = main(["interpolate", str(files[0]), str(files[1]), "-o", str(out), "--steps", "4",
                 "--model", str(tiny_melody), "--method", "lerp", "--temperature", "1.5",
                 "--seed", "3"])
    assert code == 0
    seq = read_midi(out)
    assert seq.notes and not any(n.is_drum for n in seq.notes)
    # four 2-bar steps one after another (8 s each at 120 qpm, the first clip's tempo)
    assert 4.0 <= max(n.start for n in seq.notes) < 16.0


def test_drums_go_to_channel_10(tiny_drums, datasets_dir, tmp_path):
    groove = sorted((datasets_dir / "drums" / "groove").rglob("*beat_4-4.mid"))
    out = tmp_path / "drums.mid"
    code = main(["interpolate", str(groove[0]), str(groove[1]), "-o", str(out), "--steps", "3",
                 "--model", str(tiny_drums)])
    assert code == 0
    channels = {m.channel for track in mido.MidiFile(out).tracks for m in track
                if m.type == "note_on"}
    assert channels == {9}
    assert all(n.is_drum for n in read_midi(out).notes)


def test_bad_inputs_exit_2_with_one_line(tiny_melody, tiny_drums, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    good = tmp_path / "good.mid"
    assert main(["sample", "--model", str(tiny_melody), "-n", "1", "-o", str(good)]) == 0
    capsys.readouterr()
    assert main(["interpolate", str(corrupt), str(good), "-o", str(tmp_path / "x.mid"),
                 "--model", str(tiny_melody)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cadenza: error:") and err.count("\n") == 1
    # A drum-only file has no melody (and says so before the model loads).
    drums = tmp_path / "drums.mid"
    assert main(["sample", "--model", str(tiny_drums), "-n", "1", "-o", str(drums)]) == 0
    capsys.readouterr()
    assert main(["interpolate", str(drums), str(good), "-o", str(tmp_path / "y.mid"),
                 "--model", str(tiny_melody)]) == 2
    assert "holds drums only" in capsys.readouterr().err


def test_evaluate_prints_json(tiny_melody, nottingham_subset, capsys):
    code = main(["evaluate", "melody-2bar", "--model", str(tiny_melody), "--data",
                 str(nottingham_subset), "--limit", "32"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"reconstruction_accuracy", "kl", "examples"} and out["examples"] == 32
