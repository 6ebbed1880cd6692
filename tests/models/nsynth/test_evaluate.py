"""``cadenza evaluate nsynth``: the pairs it morphs, and its figures on a tiny trained model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.cli import main
from models.nsynth.evaluate import evaluate, note_key, note_pairs


def test_note_keys_from_data_set_names_and_from_pitch() -> None:
    assert note_key(Path("valid/p073-n060-v100.wav"), 300.0) == ("p73", 60)
    assert note_key(Path("cello.wav"), 261.6) == ("cello", 60)
    assert note_key(Path("cello.wav"), 440.0 * 2 ** (0.4 / 12)) == ("cello", 69)
    assert note_key(Path("noise.wav"), float("nan")) == ("noise", None)


def test_pairs_are_same_pitch_other_instrument_spread_over_pitches() -> None:
    keys = [("p1", 60), ("p1", 64), ("p2", 60), ("p1", 60), ("p3", 60), ("p2", 64),
            ("x", None), ("y", None), ("p4", 67)]
    # pitch 60: (0,2) (0,4) (2,3) (2,4) (3,4); pitch 64: (1,5); unpitched and lone notes: none
    assert note_pairs(keys, 100) == [(0, 2), (1, 5), (0, 4), (2, 3), (2, 4), (3, 4)]
    assert note_pairs(keys, 3) == [(0, 2), (1, 5), (0, 4)]  # every pitch's first pair first
    assert note_pairs(keys, 0) == []
    assert note_pairs([("a", 60), ("a", 60)], 5) == []  # one instrument: no pair
    for i, j in note_pairs(keys, 100):
        assert i < j and keys[i][1] == keys[j][1] and keys[i][0] != keys[j][0]


def test_evaluate_reports_harmonicity_and_between(tiny_morpher, nsynth_data: Path,
                                                  tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    shutil.copytree(nsynth_data / "train", notes)  # programs 0 and 19 at pitches 60 and 72
    soundfile.write(notes / "silent.wav", np.zeros(16000, np.float32), 16000)
    result = evaluate(tiny_morpher, notes, pairs=3, batch=8)
    assert result["notes"] == 4 and result["skipped"] == 1
    assert "silent" in result["skipped_files"][0]["reason"]
    assert result["pairs"] == 2  # one per pitch: p0 x p19 at 60 and at 72
    assert {(Path(p["a"]).stem[:4], Path(p["b"]).stem[:4]) for p in result["pair_details"]} == {
        ("p000", "p019")}
    assert result["between"] in (0.0, 0.5, 1.0)
    for p in result["pair_details"]:
        assert p["between"] == (p["to_a"] < p["sources_apart"] and p["to_b"] < p["sources_apart"])
    # the sources are rendered notes: harmonic and far from flat; the figures are shares
    assert result["source_harmonic_share"] > 0.8 and result["source_flatness"] < 0.01
    for key in ("harmonic_share", "flatness", "harmonic_share_mean", "flatness_mean"):
        assert 0.0 <= result[key] <= 1.0, key
    shares = [d["harmonic_share"] for d in result["details"]]
    assert result["harmonic_share"] == pytest.approx(float(np.median(shares)), abs=1e-4)
    assert result["harmonic_share_mean"] == pytest.approx(float(np.mean(shares)), abs=1e-4)
    none = evaluate(tiny_morpher, notes, limit=2, pairs=0)
    assert none["pairs"] == 0 and none["between"] is None


def test_cli_evaluate_prints_the_new_figures(tiny_model_dir: Path, nsynth_data: Path,
                                             capsys) -> None:
    capsys.readouterr()
    assert main(["evaluate", "nsynth", "--data", str(nsynth_data / "train"), "--model",
                 str(tiny_model_dir), "--pairs", "1", "--batch", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"pitch_accuracy", "spectral_distance", "harmonic_share", "flatness",
                           "source_harmonic_share", "source_flatness", "between", "pairs"}
    assert result["pairs"] == 1 and "details" not in result and "pair_details" not in result


@pytest.mark.parametrize("argv, words", [
    (["--pairs", "-1"], "--pairs"),
    (["--seed", "-3"], "seed"),
    (["--temperature", "nan"], "--temperature"),
    (["--model", "melody-2bar"], "not a ddsp or nsynth model"),
])
def test_cli_evaluate_bad_arguments_are_one_line(nsynth_data: Path, capsys, argv: list[str],
                                                 words: str) -> None:
    capsys.readouterr()
    assert main(["evaluate", "nsynth", "--data", str(nsynth_data / "valid"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadenza: error: ") and "\n" not in err, err
    assert words in err.lower(), err


def test_a_ddsp_model_is_evaluated_the_same_way(nsynth_data: Path, tmp_path: Path,
                                                capsys) -> None:
    """``evaluate nsynth --model`` takes a model of the other Morph family: the figures come from
    the same code through the same façade operations."""
    from models.ddsp.train import train

    model = tmp_path / "tiny-ddsp"
    train(nsynth_data, model, preset="tiny", steps=10, eval_every=10, seed=1)
    capsys.readouterr()
    assert main(["evaluate", "nsynth", "--data", str(nsynth_data / "train"), "--model",
                 str(model), "--pairs", "2", "--details"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["notes"] == 4 and result["pairs"] == 2
    assert 0.0 <= result["harmonic_share"] <= 1.0 and 0.0 <= result["flatness"] <= 1.0
    assert result["source_harmonic_share"] > 0.8
    assert all(d["f0_in"] > 0 for d in result["details"])
