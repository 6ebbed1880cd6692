"""Hostile arguments: every one is refused in one line, in under a second, before any model
loads (nothing of Keras or TensorFlow is imported for them), and no file is written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.hostile.conftest import assert_refused

H12 = ",".join(["nan"] * 12)

CONTINUE = [
    (["--seconds", "nan"], "--seconds"),
    (["--seconds", "inf"], "--seconds"),
    (["--seconds", "-1"], "--seconds"),
    (["--seconds", "0"], "--seconds"),
    (["--seconds", "1e6"], "--seconds"),
    (["--temperature", "nan"], "--temperature"),
    (["--temperature", "0"], "--temperature"),
    (["--temperature", "-1"], "--temperature"),
    (["--temperature", "inf"], "--temperature"),
    (["--temperature", "1e9"], "--temperature"),
    (["--density", "nan"], "--density"),
    (["--density", "-1"], "--density"),
    (["--density", "inf"], "--density"),
    (["--density", "lots"], "--density"),
    (["--pitch-histogram", H12], "--pitch-histogram"),
    (["--pitch-histogram", ",".join(["0"] * 12)], "--pitch-histogram"),
    (["--pitch-histogram", ",".join(["1"] * 11)], "12 weights"),
    (["--pitch-histogram=" + ",".join(["-1"] * 12)], "--pitch-histogram"),
    (["--pitch-histogram", ",".join(["inf"] * 12)], "--pitch-histogram"),
    (["--pitch-histogram", "H major"], "unknown key"),
    (["--pitch-histogram", "C lydian"], "unknown mode"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**40)], "--seed"),
    (["--variations", "0"], "--variations"),
    (["--variations", "1000"], "--variations"),
    (["--beam-size", "0"], "--beam-size"),
    (["--beam-size", "1000"], "--beam-size"),
    (["--branch-factor", "1000"], "--branch-factor"),
    (["--steps-per-iteration", "1000000"], "--steps-per-iteration"),
    (["--top-p", "0"], "--top-p"),
    (["--top-p", "nan"], "--top-p"),
    (["--top-p", "2"], "--top-p"),
    (["--seed", "abc"], "--seed"),
    (["--tempo", "nan"], "--tempo"),
    (["--tempo", "inf"], "--tempo"),
    (["--tempo", "0"], "--tempo"),
    (["--tempo", "-96"], "--tempo"),
    (["--tempo", "1e6"], "--tempo"),
    (["--tempo", "fast"], "--tempo"),
    (["--no-such-option"], "unrecognized"),
]


@pytest.mark.parametrize(("extra", "words"), CONTINUE, ids=[" ".join(c[0])[:40] for c in CONTINUE])
def test_continue_arguments(cli, primer: Path, tmp_path: Path, extra: list[str],
                            words: str) -> None:
    out = tmp_path / "out.mid"
    assert_refused(cli(["continue", primer, "-o", out, *extra]), words)
    assert not out.exists() and not list(tmp_path.glob("out*"))


def _outputs(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    (tmp_path / "a-folder.mid").mkdir()
    return {
        "below a regular file": str(blocker / "out.mid"),
        "in a missing folder": str(tmp_path / "missing" / "out.mid"),
        "a folder": str(tmp_path / "a-folder.mid"),
        "unwritable": "/proc/self/cadenza-out.mid",
    }


@pytest.mark.parametrize("kind", ["below a regular file", "in a missing folder", "a folder",
                                  "unwritable"])
@pytest.mark.parametrize("command", ["continue", "interpolate", "sample"])
def test_outputs_that_cannot_be_written(cli, primer: Path, melodies, tmp_path: Path,
                                        kind: str, command: str) -> None:
    target = _outputs(tmp_path)[kind]
    argv = {
        "continue": ["continue", primer, "-o", target],
        "interpolate": ["interpolate", *melodies, "-o", target],
        "sample": ["sample", "-o", target],
    }[command]
    assert_refused(cli(argv), target)


RENDER = [
    (["--sample-rate", "0"], "--sample-rate"),
    (["--sample-rate", "1000000"], "--sample-rate"),
    (["--tail", "nan"], "--tail"),
    (["--tail", "-1"], "--tail"),
    (["--tail", "1e9"], "--tail"),
]


@pytest.mark.parametrize(("extra", "words"), RENDER, ids=[" ".join(c[0]) for c in RENDER])
def test_render_arguments(cli, primer: Path, tmp_path: Path, extra: list[str],
                          words: str) -> None:
    out = tmp_path / "out.wav"
    assert_refused(cli(["render", primer, "-o", out, *extra]), words)
    assert not out.exists()


def test_render_output_below_a_file_and_excluding_options(cli, primer: Path,
                                                          tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_refused(cli(["render", primer, "-o", blocker / "out.wav"]), "is not a folder")
    assert_refused(cli(["render", primer, "-o", tmp_path / "out.xyz"]), "cannot write audio")
    assert_refused(cli(["render", primer, "-o", tmp_path / "o.wav", "--soundfont", "x.sf2",
                        "--instrument", tmp_path]), "exclude")


MUSIC_VAE = [
    (["interpolate", "A", "B", "--steps", "1000000"], "--steps"),
    (["interpolate", "A", "B", "--steps", "1"], "--steps"),
    (["interpolate", "A", "B", "--temperature", "nan"], "--temperature"),
    (["interpolate", "A", "B", "--seed", "-1"], "--seed"),
    (["sample", "-n", "0"], "-n"),
    (["sample", "-n", "1000000"], "-n"),
    (["sample", "--temperature", "nan"], "--temperature"),
    (["sample", "--temperature", "-2"], "--temperature"),
    (["sample", "--seed", "-5"], "--seed"),
    (["interpolate", "A", "B", "--tempo", "nan"], "--tempo"),
    (["interpolate", "A", "B", "--tempo", "10"], "--tempo"),
    (["sample", "--tempo", "inf"], "--tempo"),
    (["sample", "--tempo", "401"], "--tempo"),
]


@pytest.mark.parametrize(("argv", "words"), MUSIC_VAE, ids=[" ".join(c[0]) for c in MUSIC_VAE])
def test_interpolate_and_sample_arguments(cli, melodies, tmp_path: Path, argv: list[str],
                                          words: str) -> None:
    out = tmp_path / "out.mid"
    argv = [str(melodies[0]) if a == "A" else str(melodies[1]) if a == "B" else a for a in argv]
    assert_refused(cli([*argv, "-o", out]), words)
    assert not out.exists()


MORPH = [
    (["S0", "S1", "--mix", "3"], "--mix"),
    (["S0", "S1", "--mix", "nan"], "--mix"),
    (["S0", "S1", "S2"], "not 3"),
    (["S0", "S1", "S2", "S0", "--xy", "nan,0.5"], "--xy"),
    (["S0", "S1", "--xy", "0.5,0.5"], "four sources"),
    (["S0", "S1", "--temperature", "nan"], "--temperature"),
    (["S0", "S1", "--seed", "-1"], "--seed"),
    (["S0", "S1", "--sample-rate", "5"], "--sample-rate"),
    (["S0", "S1", "--pitch", "200"], "--pitch"),
    (["S0", "S1", "--tempo", "nan"], "--tempo"),
    (["S0", "S1", "--tempo", "0"], "--tempo"),
    (["S0", "S1", "--tempo", "1e300"], "--tempo"),
    (["S0", "gm:no-such-instrument"], "no general midi instrument"),
    (["S0", "missing.wav"], "no such file"),
]


@pytest.mark.parametrize(("argv", "words"), MORPH, ids=[" ".join(c[0]) for c in MORPH])
def test_morph_arguments(cli, sounds, tmp_path: Path, argv: list[str], words: str) -> None:
    out = tmp_path / "out.wav"
    argv = [str(sounds[int(a[1])]) if a in ("S0", "S1", "S2") else a for a in argv]
    assert_refused(cli(["morph", *argv, "-o", out]), words)
    assert not out.exists()


INSTRUMENT = [
    (["--pitches", ",".join(str(p) for p in range(128))], "--pitches"),
    (["--pitches", "abc"], "--pitches"),
    (["--pitches", "200"], "--pitches"),
    (["--pitches=-3,40"], "--pitches"),
    (["--release", "nan"], "--release"),
    (["--release", "1e9"], "--release"),
    (["--mix", "3"], "--mix"),
]


@pytest.mark.parametrize(("extra", "words"), INSTRUMENT,
                         ids=[" ".join(c[0])[:30] for c in INSTRUMENT])
def test_morph_instrument_arguments(cli, sounds, tmp_path: Path, extra: list[str],
                                    words: str) -> None:
    out = tmp_path / "inst"
    assert_refused(cli(["morph-instrument", *map(str, sounds[:2]), "-o", out, *extra]), words)
    assert not out.exists()


def test_morph_instrument_output_that_is_a_file(cli, sounds, tmp_path: Path) -> None:
    out = tmp_path / "inst"
    out.write_text("a file")
    assert_refused(cli(["morph-instrument", *map(str, sounds[:2]), "-o", out]), "not a folder")
    assert out.read_text() == "a file"


TRAIN = [
    (["performance", "--steps", "0"], "--steps"),
    (["performance", "--steps", "-5"], "--steps"),
    (["performance", "--learning-rate", "nan"], "--learning-rate"),
    (["performance", "--max-minutes", "nan"], "--max-minutes"),
    (["performance", "--seed", "-1"], "--seed"),
    (["performance", "--warmup-steps", "-3"], "--warmup-steps"),
    (["nsynth", "--steps", "0"], "--steps"),
    (["nsynth", "--max-minutes", "-1"], "--max-minutes"),
    (["nsynth", "--batch-size", "0"], "--batch-size"),
    (["ddsp", "--steps", "0"], "--steps"),
    (["ddsp", "--batch-size", "0"], "--batch-size"),
    (["ddsp", "--learning-rate", "nan"], "--learning-rate"),
    (["melody-2bar", "--steps", "0"], "--steps"),
    (["melody-2bar", "--time-limit", "nan"], "--time-limit"),
]


@pytest.mark.parametrize(("argv", "words"), TRAIN, ids=[" ".join(c[0]) for c in TRAIN])
def test_train_arguments(cli, tmp_path: Path, argv: list[str], words: str) -> None:
    out = tmp_path / "run"
    assert_refused(cli(["train", *argv, "--data", tmp_path, "--out", out]), words)
    assert not out.exists()


@pytest.mark.parametrize("family", ["performance", "nsynth", "ddsp", "melody-2bar"])
def test_train_output_below_a_file(cli, tmp_path: Path, family: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_refused(cli(["train", family, "--data", tmp_path, "--out", blocker / "run" / "a"]),
                   "is a file")
    assert_refused(cli(["train", family, "--data", tmp_path, "--out", blocker]), "is a file")
    assert blocker.read_text() == "x"


def test_dataset_output_below_a_file(cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_refused(cli(["dataset", "nsynth", "--out", blocker / "set"]), "is a file")


@pytest.mark.parametrize("extra", [["--seconds", "nan"], ["--silence-ms", "nan"],
                                   ["--temperature", "nan"], ["--seed", "-1"],
                                   ["--channel", "99"], ["--quantize", "nan"],
                                   ["--quantize", "1.5"], ["--quantize-grid", "1/0"],
                                   ["--quantize-grid", "sixteenth"],
                                   ["--quantize-grid", "1/256"]])
def test_duet_arguments(cli, extra: list[str]) -> None:
    assert_refused(cli(["duet", "--input", "none", "--output", "none", *extra]))


def test_argument_errors_import_no_backend(cli, primer: Path, tmp_path: Path) -> None:
    """The checks above come before Keras: in a fresh process none of it is imported."""
    import subprocess

    code = ("import sys; from app.cli import main; "
            f"r = main(['continue', {str(primer)!r}, '-o', {str(tmp_path / 'o.mid')!r}, "
            "'--seconds', 'nan']); "
            "print(r, any(m in sys.modules for m in ('keras', 'tensorflow', 'jax')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert done.stderr.count("\n") == 1 and "--seconds" in done.stderr


@pytest.mark.parametrize("command", ["sample", "interpolate"])
@pytest.mark.parametrize("suffix", [".musicxml", ".mxl"])
def test_drums_to_musicxml_are_refused_before_the_model_loads(cli, tmp_path: Path,
                                                              command: str, suffix: str) -> None:
    """MusicXML cannot carry a drum kit (models/musicxml.py): said at once, not after the
    model has run."""
    from tests.hostile.conftest import EXAMPLES

    out = tmp_path / f"out{suffix}"
    argv = {"sample": ["sample", "--model", "drums-2bar", "-o", out],
            "interpolate": ["interpolate", EXAMPLES / "drums-funk.mid",
                            EXAMPLES / "drums-rock.mid", "-o", out]}[command]
    assert_refused(cli(argv), "drum", "MusicXML", ".mid")
    assert not out.exists()


def test_musicxml_output_without_music21_is_refused_first(cli, tmp_path: Path,
                                                          monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "music21", None)  # as if it were not installed
    out = tmp_path / "samples.musicxml"
    assert_refused(cli(["sample", "-o", out]), "music21")
    assert not out.exists()
