"""Conditioning taken from what was played, and the measures of following."""

from __future__ import annotations

import numpy as np
import pytest

from models.performance_rnn import follow
from models.sequence import Note, NoteSequence


def _scale(start: float, pitches: list[int], step: float = 0.25) -> list[Note]:
    return [Note(p, 80, start + i * step, start + (i + 1) * step) for i, p in enumerate(pitches)]


def test_reference_controls_follow_the_last_bars() -> None:
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    f_sharp = [66, 68, 70, 71, 73, 75, 77, 78]
    # 8 s of C major at 4 notes/s, then 4 s of F# major at 8 notes/s
    notes = _scale(0.0, c_major * 4) + _scale(8.0, f_sharp * 4, step=0.125)
    ref = follow.reference_controls(NoteSequence(notes=notes), half_life=4.0)
    assert ref is not None
    assert ref.histogram.shape == (12,) and ref.histogram.sum() == pytest.approx(1.0)
    # the recent key weighs most: F# (6) over C (0), which is not in F# major
    assert ref.histogram[6] > 1.2 * ref.histogram[0]
    assert ref.histogram[1] > ref.histogram[2]  # C# (F# major only) over D (C major only)
    # recent density (8/s) weighs more than the earlier 4/s
    assert 6.0 < ref.density < 8.5
    # a longer half-life remembers more of the C major part
    slow = follow.reference_controls(NoteSequence(notes=notes), half_life=60.0)
    assert slow.histogram[0] > ref.histogram[0] and slow.density < ref.density
    assert follow.reference_controls(NoteSequence(notes=notes)).histogram[0] > ref.histogram[0]
    flat = follow.reference_controls(NoteSequence(notes=notes), flatten=1.0)
    np.testing.assert_allclose(flat.histogram, np.full(12, 1 / 12))
    assert follow.reference_controls(NoteSequence()) is None
    drums = NoteSequence(notes=[Note(36, 100, 0.0, 0.1, is_drum=True)])
    assert follow.reference_controls(drums) is None


def test_following_measures() -> None:
    ref = NoteSequence(notes=_scale(0.0, [60, 62, 64, 65, 67, 69, 71] * 2))
    same = NoteSequence(notes=_scale(0.0, [60, 64, 67, 72] * 5))
    other = NoteSequence(notes=_scale(0.0, [61, 63, 66, 68, 70] * 4))
    assert follow.in_key_share(same, ref) == 1.0
    assert follow.in_key_share(other, ref) == 0.0
    assert follow.js_divergence([1, 0], [1, 0]) == 0.0
    assert follow.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    forth, back = follow.js_divergence([2, 1], [1, 3]), follow.js_divergence([1, 3], [2, 1])
    assert forth == pytest.approx(back) and 0 < forth < 1
    figures = follow.follow_figures(ref, same, seconds=5.0)
    assert figures["notes_per_second"] == pytest.approx(4.0)
    assert figures["median_note_seconds"] == pytest.approx(0.25)
    summary = follow.summarize([figures, {**figures, "in_key": float("nan")}])
    assert summary["in_key"] == 1.0


def test_a_model_folder_sets_how_its_model_follows(tmp_path) -> None:  # noqa: ANN001
    import json
    import shutil

    from models.errors import CadenzaError
    from models.registry import SHIPPED_DIR, ModelRegistry

    primer = NoteSequence(notes=_scale(0.0, [60, 62, 64, 65, 67, 69, 71] * 3))
    density, hist = follow.resolve_controls(primer, "primer", "primer",
                                            follow.Following(flatten=1.0))
    np.testing.assert_allclose(hist, np.full(12, 1 / 12))
    _, keyed = follow.resolve_controls(primer, "primer", "primer")
    assert keyed[1] == 0.0 and density == pytest.approx(4.0, rel=0.2)  # no C# in C major

    folder = tmp_path / "flat"
    shutil.copytree(SHIPPED_DIR / "performance-small", folder)
    config = folder / "config.json"
    payload = json.loads(config.read_text())
    config.write_text(json.dumps({**payload, "follow": {"half_life": 16, "flatten": 1.0}}))
    registry = ModelRegistry([])
    model = registry.load(str(folder), "performance")
    assert model.following == follow.Following(half_life=16.0, flatten=1.0)
    assert model.stream().following == model.following  # the duet follows the same way
    shipped = registry.load(str(SHIPPED_DIR / "performance-small"))
    assert shipped.following == follow.Following()
    takes = [m.generate(primer, 3.0, seed=3, density="primer", pitch_histogram="primer")[0]
             .continuation for m in (model, shipped)]
    assert takes[0].notes != takes[1].notes  # the flat histogram conditions differently
    for bad in ({"flatten": 2}, {"half_life": "long"}, {"half_life": float("nan")}, [8],
                {"speed": 1}):
        config.write_text(json.dumps({**payload, "follow": bad}))
        with pytest.raises(CadenzaError, match="follow") as info:
            ModelRegistry([]).load(str(folder), "performance")
        assert "\n" not in str(info.value)
