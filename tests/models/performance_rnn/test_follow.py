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
    assert shipped.following == follow.Following(half_life=8.0, flatten=0.2, release=0.7)
    takes = [m.generate(primer, 3.0, seed=3, density="primer", pitch_histogram="primer")[0]
             .continuation for m in (model, shipped)]
    assert takes[0].notes != takes[1].notes  # the flat histogram conditions differently
    for bad in ({"flatten": 2}, {"half_life": "long"}, {"half_life": float("nan")}, [8],
                {"speed": 1}, {"release": -1}, {"release": 10}):
        config.write_text(json.dumps({**payload, "follow": bad}))
        with pytest.raises(CadenzaError, match="follow") as info:
            ModelRegistry([]).load(str(folder), "performance")
        assert "\n" not in str(info.value)


def test_density_is_the_local_density_of_the_notes() -> None:
    # 4 s of a note every 0.5 s, then 2 s of a note every 0.1 s: over the whole span it is
    # 28 notes in 6 s (4.7/s), but most notes sit in the fast run, at 10/s, and the model was
    # trained on the density around each note
    notes = _scale(0.0, [60] * 8, step=0.5) + _scale(4.0, [62] * 20, step=0.1)
    local = follow.local_density(np.array([n.start for n in notes]), 0.0, 6.0)
    # (the last notes' windows are moved back to end with the reference: 3.0-6.0 s)
    assert local[0] == pytest.approx(6 / 3) and local[-1] == pytest.approx(22 / 3)
    ref = follow.reference_controls(NoteSequence(notes=notes), half_life=600.0)
    assert ref.density == pytest.approx(local.mean(), rel=0.01) and ref.density > 28 / 6
    # a reference shorter than the window: its own span
    short = _scale(0.0, [60] * 4, step=0.25)
    assert follow.reference_controls(NoteSequence(notes=short)).density == pytest.approx(4.0)


def test_release_lets_conditioned_notes_go_sooner() -> None:
    import dataclasses

    from models.performance_rnn.generate import Continuer
    from models.registry import SHIPPED_DIR, ModelRegistry

    model = ModelRegistry([]).load(str(SHIPPED_DIR / "performance-small"), "performance")
    primer = NoteSequence(notes=_scale(0.0, [60, 64, 67, 72, 67, 64] * 3, step=0.3))

    def lengths(release: float, density: float | str) -> tuple[float, list]:
        following = dataclasses.replace(model.following, release=release)
        session = Continuer(model.network, following=following)
        dens, hist = follow.resolve_controls(primer, density, density)
        session.prime(primer, dens, hist)
        takes = session.generate(8.0, variations=4, seed=5, density=dens, pitch_histogram=hist)
        notes = [n for t in takes for n in t.notes]
        return float(np.median([n.end - n.start for n in notes])), notes

    held, _ = lengths(0.0, "primer")
    released, _ = lengths(1.5, "primer")
    assert released < 0.75 * held, (released, held)
    # unconditioned, the release does not apply: the same notes
    assert lengths(0.0, "off")[1] == lengths(1.5, "off")[1]
    # the duet's answers too: released while they follow the player, not when nothing is
    from models.performance_rnn.live import StreamingContinuer

    stream = StreamingContinuer(model.network,
                                following=dataclasses.replace(model.following, release=1.5))
    stream.start_phrase(0.0, reference=primer)
    assert stream.answer(2.0, rng=1).release == 1.5
    assert stream.answer(2.0, rng=1, reference=NoteSequence()).release == 0.0
    stream.start_phrase(0.0)
    assert stream.answer(2.0, rng=1).release == 0.0
