"""Morph instruments worth exporting: rendered at the export rate, without DC, with seamless
sustain loops the sampler honours, neighbouring notes at one level, progress that moves, and an
SFZ that a third-party parser (sfzlint) reads; and Cadenza's own SFZ reading of real-world
syntax. On the tiny trained model (``tiny_morpher``) and on small WAVs written here."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from models.errors import CadenzaError
from models.nsynth.instrument import (
    Loop,
    MorphInstrument,
    build_instrument,
    find_loop,
    parse_sfz,
    play_looped,
    renders_at_any_rate,
    sfz_key,
)
from models.nsynth.voices import SamplerVoices, render_sequence
from models.sequence import Note, NoteSequence

RATE = 48000
PITCHES = [48, 60, 72, 84]
FRAME = 0.02


def levels_db(x: np.ndarray, rate: int) -> np.ndarray:
    n = int(FRAME * rate)
    frames = x[: len(x) // n * n].astype(np.float64).reshape(-1, n)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)


def audible_seconds(x: np.ndarray, rate: int) -> float:
    """Until the last 20 ms frame within 40 dB of the loudest."""
    db = levels_db(x, rate)
    return float((np.flatnonzero(db >= db.max() - 40)[-1] + 1) * FRAME)


def held(inst: MorphInstrument, pitch: int, seconds: float) -> np.ndarray:
    seq = NoteSequence(notes=[Note(pitch, 100, 0.0, seconds)])
    return render_sequence(inst, seq, sample_rate=RATE, tail=1.0).samples[:, 0]


@pytest.fixture(scope="module")
def built(tiny_morpher, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[Path, MorphInstrument, list[float]]:
    out = tmp_path_factory.mktemp("instrument") / "inst"
    seen: list[float] = []
    inst = build_instrument(tiny_morpher, ["gm:0", "gm:73"], out, amount=0.5, pitches=PITCHES,
                            sample_rate=RATE, progress=seen.append)
    return out, inst, seen


# ---------------------------------------------------------------------------- rendering
def test_the_wavs_are_at_the_export_rate(built, tiny_morpher) -> None:
    out, inst, _ = built
    assert not renders_at_any_rate(tiny_morpher)  # the WaveNet decodes at 16 kHz: resampled
    assert inst.sample_rate == RATE and inst.pitches == PITCHES
    for p in PITCHES:
        assert soundfile.info(out / f"morph-p{p:03d}.wav").samplerate == RATE
    info = json.loads((out / "instrument.json").read_text())
    assert info["sample_rate"] == RATE and info["rendered_at"] == 16000


def test_a_model_that_renders_at_any_rate_renders_at_the_export_rate(
        nsynth_data: Path, tmp_path: Path) -> None:
    """A DDSP model (trained here for a few steps) is asked for the rate, not resampled."""
    from models.ddsp.morph import DDSPMorpher
    from models.ddsp.train import train

    train(nsynth_data, tmp_path / "ddsp", preset="tiny", steps=10, eval_every=10, seed=1)
    morpher = DDSPMorpher.load(tmp_path / "ddsp")
    assert renders_at_any_rate(morpher)
    inst = build_instrument(morpher, ["gm:0", "gm:73"], tmp_path / "i", pitches=[48, 72],
                            sample_rate=44100)
    info = json.loads((tmp_path / "i" / "instrument.json").read_text())
    assert inst.sample_rate == info["sample_rate"] == info["rendered_at"] == 44100
    for p in (48, 72):
        x, rate = soundfile.read(tmp_path / "i" / f"morph-p{p:03d}.wav")
        assert rate == 44100 and abs(float(np.mean(x))) < 1e-4


def test_no_dc(built) -> None:
    out, _, _ = built
    for p in PITCHES:
        x, _ = soundfile.read(out / f"morph-p{p:03d}.wav")
        assert abs(float(np.mean(x))) < 1e-4, p


def test_the_progress_rises_between_0_and_1(built) -> None:
    _, _, seen = built
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert all(b >= a for a, b in zip(seen, seen[1:], strict=False))
    inside = {round(f, 4) for f in seen if 0.0 < f < 1.0}
    assert len(inside) >= 10  # sources, every decoded chunk, every finished note


# ---------------------------------------------------------------------------- loops
def test_every_note_has_a_seamless_loop_in_its_held_part(built) -> None:
    out, inst, _ = built
    regions, _ = parse_sfz(out / "instrument.sfz")
    assert len(regions) == len(PITCHES)
    for r in regions:
        assert r["loop_mode"] == "loop_continuous"
        x, rate = soundfile.read(out / r["sample"])
        start, last = int(r["loop_start"]), int(r["loop_end"])
        assert 0 < start < last < len(x) and last - start > 0.5 * rate  # a long loop
        assert last < 3.05 * rate  # inside the held segment (the sources are held 3 s)
        # the jump from the loop's last sample back to its first is like any other step...
        steps = np.abs(np.diff(x[start: last + 1]))
        assert abs(x[start] - x[last]) <= np.percentile(steps, 99.9)
        # ...and the level on both sides of it is the same (over 50 ms: the tiny model's
        # sound wavers by a few dB from one 10 ms to the next)
        n = int(0.05 * rate)
        before = np.sqrt(np.mean(x[last + 1 - n: last + 1] ** 2))
        after = np.sqrt(np.mean(x[start: start + n] ** 2))
        assert abs(20 * np.log10(before / after)) < 3.0
        key = int(r["pitch_keycenter"])
        assert inst.loops[key] == Loop(start, last + 1)


def riff_chunks(path: Path) -> dict[bytes, bytes]:
    """A WAV's chunks by id (read here, not with the code under test)."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    chunks, pos = {}, 12
    while pos + 8 <= len(data):
        kind, size = struct.unpack_from("<4sI", data, pos)
        chunks[kind] = data[pos + 8: pos + 8 + size]
        pos += 8 + size + (size & 1)
    return chunks


def test_the_wavs_carry_their_loop_and_root_key_in_a_smpl_chunk(built, tmp_path: Path) -> None:
    out, inst, _ = built
    for key in PITCHES:
        smpl = riff_chunks(out / f"morph-p{key:03d}.wav")[b"smpl"]
        period, unity = struct.unpack_from("<II", smpl, 8)
        loops = struct.unpack_from("<I", smpl, 28)[0]
        kind, start, last, _, count = struct.unpack_from("<5I", smpl, 36 + 4)
        assert (unity, loops, kind, count) == (key, 1, 0, 0)
        assert period == round(1e9 / RATE)
        assert (start, last + 1) == (inst.loops[key].start, inst.loops[key].end)
    # an SFZ that names no loop plays the WAV's own (loop_continuous, as the format has it)
    wav = out / "morph-p060.wav"
    (tmp_path / "a.wav").write_bytes(wav.read_bytes())
    (tmp_path / "instrument.sfz").write_text("<region> sample=a.wav key=60\n")
    assert MorphInstrument.load(tmp_path).loops == {60: inst.loops[60]}
    (tmp_path / "instrument.sfz").write_text("<region> sample=a.wav key=60 loop_mode=no_loop\n")
    assert MorphInstrument.load(tmp_path).loops == {}


def test_every_key_sustains_while_held_and_releases_on_note_off(built) -> None:
    _, inst, _ = built
    for pitch in (36, 60, 96, 108):  # below, at and above the key centres
        x = held(inst, pitch, 4.0)
        assert 4.0 <= audible_seconds(x, RATE) <= 4.0 + inst.release + 0.05, pitch
        db = levels_db(x[: 4 * RATE], RATE)
        assert db[10:].min() > db.max() - 12, pitch  # steady: no note fades while held
        assert np.abs(x[int((4.0 + inst.release + 0.02) * RATE):]).max() < 1e-4
    # MorphInstrument.note (the test note, the MIDI keyboard) holds through the loop too
    note = inst.note(96, 100, 5.0, sample_rate=RATE)
    assert note.shape == (int((5.0 + inst.release) * RATE),)
    assert levels_db(note[: 5 * RATE], RATE)[10:].min() > levels_db(note, RATE).max() - 12


def test_neighbouring_notes_have_the_same_level(built) -> None:
    _, inst, _ = built
    level = []
    for p in PITCHES:
        x = held(inst, p, 2.0)[int(0.5 * RATE): int(1.5 * RATE)]
        level.append(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))))
    assert np.abs(np.diff(level)).max() <= 1.5, level


def test_an_audio_source_shifted_up_is_held_to_its_full_length(tiny_morpher,
                                                               nsynth_data: Path) -> None:
    """A note two octaves above its source is not a quarter as long: the morph is decoded
    from a source as long as the original note."""
    from models.nsynth.instrument import _source_at

    wav = sorted((nsynth_data / "train").glob("*n060*.wav"))[0]
    x = _source_at(tiny_morpher, str(wav), 84, {})
    original = tiny_morpher.source_audio(str(wav))
    assert x.shape == original.shape
    assert audible_seconds(x, 16000) >= 0.9 * audible_seconds(original, 16000)


def test_find_loop_on_a_decaying_tone_and_silence() -> None:
    rate = 16000
    t = np.arange(2 * rate) / rate
    tone = np.sin(2 * np.pi * 220 * t) * np.exp(-t / 0.25) * np.minimum(1, t / 0.01)
    loop = find_loop(tone.astype(np.float32), rate, held=2.0)
    assert loop is not None
    assert 0.05 * rate <= loop.start < loop.end <= 0.55 * rate  # before it falls 18 dB
    assert tone[loop.start - 1] < 0 <= tone[loop.start] and tone[loop.end - 1] < 0 <= \
        tone[loop.end]
    assert find_loop(np.zeros(rate, np.float32), rate) is None


def test_play_looped_wraps_continuous_and_sustain_loops() -> None:
    x = np.arange(10, dtype=np.float32)
    assert play_looped(x, Loop(4, 8), 14).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5]
    sustain = play_looped(x, Loop(4, 8, "loop_sustain"), 14, release_at=9)
    assert sustain.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 8, 9]
    assert play_looped(x, None, 12).tolist() == [*range(10), 0, 0]


# ---------------------------------------------------------------------------- the sampler
def _sine_instrument(folder: Path, mode: str = "loop_continuous") -> Path:
    """A 0.5 s 200 Hz sine at 16 kHz whose loop is 50 whole periods: seamless by itself."""
    folder.mkdir()
    rate = 16000
    x = 0.5 * np.sin(2 * np.pi * 200 * np.arange(rate // 2) / rate)
    soundfile.write(folder / "sine tone.wav", x, rate)
    (folder / "instrument.sfz").write_text(
        f"<group> ampeg_release=0.1\n<region> sample=sine tone.wav key=60 loop_mode={mode} "
        f"loop_start=800 loop_end={800 + 50 * 80 - 1}\n")
    return folder


def test_the_sampler_loops_while_held_and_fades_on_release(tmp_path: Path) -> None:
    inst = MorphInstrument.load(_sine_instrument(tmp_path / "sine"))
    assert inst.loops == {60: Loop(800, 4800)}
    voices = SamplerVoices(inst, 16000, gain=1.0)
    voices.note_on(0, 60, 127)
    block = np.concatenate([voices.render(256) for _ in range(125)])  # 2 s: 4x the sample
    steady = block[1600:]
    assert np.abs(steady).max() > 0.3 and np.abs(steady[-1600:]).max() > 0.3
    assert np.abs(np.diff(steady)).max() < 0.05  # no click where the loop wraps
    voices.note_off(0, 60)
    tail = np.concatenate([voices.render(256) for _ in range(10)])
    assert voices.active_voices == 0 and np.abs(tail[-100:]).max() == 0.0
    # a loop_sustain sample loops while held, then plays on to its end after the key goes up
    sus = MorphInstrument.load(_sine_instrument(tmp_path / "sus", "loop_sustain"))
    seq = NoteSequence(notes=[Note(60, 100, 0.0, 1.0)])
    y = render_sequence(sus, seq, sample_rate=16000, tail=0.5).samples[:, 0]
    assert np.abs(y[int(0.9 * 16000): 16000]).max() > 0.1  # held beyond the 0.5 s sample


# ---------------------------------------------------------------------------- SFZ syntax
def _wav(path: Path, seconds: float = 0.2, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, 0.3 * np.sin(np.arange(int(seconds * rate)) * 0.1), rate)


def test_sfz_note_names() -> None:
    assert [sfz_key(t) for t in ("60", "c4", "C4", "c#4", "db4", "eb3", "b3", "a4", "c-1",
                                 "g9")] == [60, 60, 60, 61, 61, 51, 59, 69, 0, 127]
    for bad in ("h4", "c", "c#", "4c", "c10"):
        with pytest.raises(ValueError):
            sfz_key(bad)


def test_real_world_sfz_syntax(tmp_path: Path) -> None:
    _wav(tmp_path / "samples" / "Grand Piano C4.wav")
    _wav(tmp_path / "samples" / "Grand Piano C5.wav")
    _wav(tmp_path / "samples" / "low.wav")
    (tmp_path / "piano.sfz").write_text("""// a hand-written instrument
/* a block
   comment <region> sample=nothing.wav */
#define $REL 0.7
#include "other.sfz"
<control> default_path=samples\\
<global> ampeg_release=$REL amp_veltrack=100
<master> volume=-3
<group> lokey=c#4 hikey=b4 // the middle
<region> sample=Grand Piano C4.wav pitch_keycenter=c4 lokey=c4
<group> ampeg_attack=0.01
<region> sample=Grand Piano C5.wav key=c5 hikey=127
<master>
<group>
<region> sample=low.wav lokey=0 hikey=eb3 pitch_keycenter=48
""")
    regions, scope = parse_sfz(tmp_path / "piano.sfz")
    assert [r["sample"] for r in regions] == ["samples/Grand Piano C4.wav",
                                              "samples/Grand Piano C5.wav", "samples/low.wav"]
    first, second, third = regions
    # global, master and group opcodes inherited; the region's own win
    assert first["ampeg_release"] == "0.7" and first["volume"] == "-3"
    assert (first["lokey"], first["hikey"], first["pitch_keycenter"]) == ("c4", "b4", "c4")
    # a new <group> drops the old group's opcodes; key= sets all three, hikey= after it wins
    assert "ampeg_attack" in second and second["lokey"] == "c5"
    assert (second["pitch_keycenter"], second["hikey"]) == ("c5", "127")
    # a new <master> drops the master's and the group's, the <global>'s stay
    assert "volume" not in third and "ampeg_attack" not in third
    assert third["ampeg_release"] == "0.7" and scope == {"ampeg_release": "0.7",
                                                         "amp_veltrack": "100"}
    inst = MorphInstrument.load(tmp_path)
    assert inst.pitches == [48, 60, 72] and inst.release == pytest.approx(0.7)
    assert inst.ranges == [(0, 51, 48), (60, 71, 60), (72, 127, 72)]


def test_a_bad_loop_is_one_clear_line(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav", seconds=0.1)
    for opcodes, words in (("loop_mode=loop_continuous loop_start=10 loop_end=99999", "inside"),
                           ("loop_mode=loop_continuous loop_start=x loop_end=20", "sample num"),
                           ("loop_mode=forever loop_start=1 loop_end=20", "loop_mode")):
        (tmp_path / "instrument.sfz").write_text(f"<region> sample=a.wav key=60 {opcodes}\n")
        with pytest.raises(CadenzaError, match=words):
            MorphInstrument.load(tmp_path)
    (tmp_path / "instrument.sfz").write_text("<region> sample=a.wav key=60 loop_mode=no_loop "
                                             "loop_start=10 loop_end=20\n")
    assert MorphInstrument.load(tmp_path).loops == {}


def test_a_third_party_parser_reads_the_written_sfz(built) -> None:
    """sfzlint (a lark grammar of SFZ and a table of the spec's opcodes and their ranges)
    finds no error or warning in the file, its samples exist, and it reads the same regions."""
    from sfzlint.parser import SFZValidatorConfig, validate

    out, inst, _ = built
    sfz = out / "instrument.sfz"
    problems: list[tuple[str, str]] = []
    parsed = validate(sfz, err_cb=lambda sev, msg, *_: problems.append((sev, msg)),
                      config=SFZValidatorConfig(file_path=sfz))
    assert problems == []
    regions = [dict(r.items()) for r in parsed.regions]
    assert [int(r["pitch_keycenter"]) for r in regions] == PITCHES
    for r in regions:
        key = int(r["pitch_keycenter"])
        assert (out / str(r["sample"])).is_file()
        assert (int(r["loop_start"]), int(r["loop_end"]) + 1) == (inst.loops[key].start,
                                                                 inst.loops[key].end)
        assert str(r["loop_mode"]) == "loop_continuous"


# ---------------------------------------------------------------------------- the CLI
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_morph_instrument_at_48k_with_a_moving_bar(tiny_model_dir: Path, tmp_path: Path,
                                                       monkeypatch, capsys) -> None:
    """``cadenza morph-instrument`` writes 48 kHz by default, and on a terminal its bar is
    told more than the start and the end."""
    import app.commands.nsynth as nsynth_cmd
    from app.cli import main
    from app.commands.progress import progress_bar

    told: list[float] = []

    @contextlib.contextmanager
    def watched(stage: str, stream: Any = None) -> Any:
        with progress_bar(stage, stream=Terminal()) as report:
            def both(fraction: float | None = None, stage: str | None = None) -> None:
                if fraction is not None:
                    told.append(fraction)
                report(fraction, stage)

            yield both

    monkeypatch.setattr(nsynth_cmd, "progress_bar", watched)
    out = tmp_path / "inst"
    assert main(["morph-instrument", "gm:0", "gm:73", "--pitches", "60,72", "--model",
                 str(tiny_model_dir), "-o", str(out)]) == 0
    assert "2 notes at 48000 Hz (2 with a sustain loop)" in capsys.readouterr().out
    assert soundfile.info(out / "morph-p060.wav").samplerate == 48000
    assert "loop_mode=loop_continuous" in (out / "instrument.sfz").read_text()
    assert len({f for f in told if 0 < f < 1}) >= 10 and told[-1] == 1.0
