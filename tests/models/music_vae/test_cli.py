"""``cadenza sample`` / ``interpolate`` / ``evaluate`` in-process with tiny model folders."""

from __future__ import annotations

import json
import time

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


def _note_on_ticks(path) -> list[int]:  # noqa: ANN001
    out = []
    for track in mido.MidiFile(path).tracks:
        tick = 0
        for m in track:
            tick += m.time
            if m.type == "note_on" and m.velocity > 0:
                out.append(tick)
    return out


def test_interpolate_and_sample_at_the_session_tempo(tiny_melody, nottingham_subset,
                                                     tmp_path):
    """--tempo 96: the grid's sixteenths become seconds at 96 BPM (0.15625 s; 2 bars are 5 s)
    and the file carries 96 BPM, so every note starts on a sixteenth of the DAW's grid."""
    files = sorted(nottingham_subset.glob("*.mid"))
    assert read_midi(files[0]).qpm != 96.0  # the tempo comes from --tempo, not the clip
    out = tmp_path / "morph.mid"
    assert main(["interpolate", str(files[0]), str(files[1]), "-o", str(out), "--steps", "3",
                 "--model", str(tiny_melody), "--temperature", "1.5", "--seed", "3",
                 "--tempo", "96"]) == 0
    seq = read_midi(out)
    assert [(t.time, t.qpm) for t in seq.tempos] == [(0.0, 96.0)]
    assert [m.tempo for t in mido.MidiFile(out).tracks for m in t
            if m.type == "set_tempo"] == [625_000]
    sixteenth = 60.0 / 96.0 / 4
    assert seq.notes and max(n.start for n in seq.notes) < 3 * 5.0
    assert max(n.start for n in seq.notes) >= 5.0  # the second step starts 2 bars (5 s) in
    for n in seq.notes:
        assert n.start / sixteenth == pytest.approx(round(n.start / sixteenth), abs=1e-6)
    ticks = _note_on_ticks(out)  # 480 per quarter: a sixteenth is 120 ticks
    assert ticks and all(t % 120 == 0 for t in ticks)

    samples = tmp_path / "samples.mid"
    assert main(["sample", "--model", str(tiny_melody), "-n", "3", "-o", str(samples),
                 "--temperature", "0.8", "--seed", "4", "--tempo", "96"]) == 0
    seq = read_midi(samples)
    assert seq.qpm == 96.0 and seq.notes and max(n.start for n in seq.notes) < 3 * 5.0
    assert all(t % 120 == 0 for t in _note_on_ticks(samples))


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own refusal of a value that is not a number
        return int(exc.code or 0)


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-96", "19.9", "400.5", "1e9", "fast"])
def test_a_bad_tempo_is_one_line_before_any_model_loads(value, nottingham_subset, tmp_path,
                                                        capsys):
    """Checked before the model: a model folder that does not exist is never reached."""
    files = sorted(nottingham_subset.glob("*.mid"))
    missing = str(tmp_path / "no-such-model")
    for argv in (["interpolate", str(files[0]), str(files[1]), "-o", str(tmp_path / "x.mid"),
                  "--model", missing, "--tempo", value],
                 ["sample", "-o", str(tmp_path / "x.mid"), "--model", missing,
                  "--tempo", value]):
        capsys.readouterr()
        assert _exit_code(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("cadenza: error: ") and err.count("\n") == 1, err
        assert "--tempo" in err and "no-such-model" not in err
        assert not (tmp_path / "x.mid").exists()


def test_interpolate_reads_musicxml_and_writes_musicxml(datasets_dir, tmp_path, capsys):
    """The shipped melody-2bar model: a Nottingham reel as MusicXML gives the same steps as the
    reel as MIDI (greedy decoding), and a .musicxml output holds those steps as notation, on
    the grid, at the reel's tempo and in its 4/4."""
    from models.musicxml import read_musicxml, write_musicxml

    root = datasets_dir / "melody" / "nottingham"
    a, b = root / "reelsa-c1.mid", root / "ashover12.mid"
    score = tmp_path / "reel.musicxml"
    write_musicxml(read_midi(a), score)
    as_midi, as_score = tmp_path / "steps.mid", tmp_path / "steps.musicxml"
    assert main(["interpolate", str(a), str(b), "-o", str(as_midi), "--steps", "3",
                 "--model", "melody-2bar"]) == 0
    started = time.perf_counter()
    assert main(["interpolate", str(score), str(b), "-o", str(as_score), "--steps", "3",
                 "--model", "melody-2bar"]) == 0
    print(f"interpolate with MusicXML in and out: {time.perf_counter() - started:.1f} s")
    assert "to " + str(as_score) in capsys.readouterr().out
    assert b"<score-partwise" in as_score.read_bytes()
    want, got = read_midi(as_midi), read_musicxml(as_score)
    assert len(want.notes) > 8
    sixteenth = 60.0 / want.qpm / 4

    def grid(seq):  # noqa: ANN001, ANN202
        return [(n.pitch, round(n.start / sixteenth), round(n.end / sixteenth))
                for n in seq.notes]

    assert grid(got) == grid(want)
    assert [(t.time, t.qpm) for t in got.tempos] == [(0.0, want.qpm)]
    assert [(t.numerator, t.denominator) for t in got.time_signatures] == [(4, 4)]
