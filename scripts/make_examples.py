"""Write the example files in ``assets/examples/``: a primer, melodies, grooves and sounds.

    .venv/bin/python scripts/make_examples.py [--out DIR] [--soundfont SF2] [--no-sounds]

Everything here is composed in code for Cadenza (no data set is read), so the files carry the
project's license. The sounds are single notes rendered with FluidSynth from FluidR3_GM, the way
``cadenza dataset nsynth`` renders its notes (16 kHz mono, 3 s held + 1 s release, RMS -20 dBFS).

Deterministic: the "human" timing and dynamics come from a seeded generator, and MIDI times land
on whole ticks, so the MIDI files come out byte for byte the same on every run (the tests check
that); the WAVs are the same for the same FluidSynth and soundfont.

* ``piano-phrase.mid``: about 8 s of solo piano (C - Am - Dm7 G7 - C at 120 bpm), an arpeggiated
  left hand under a melody, varied velocities, slightly human timing, sustain pedal. A primer
  for Continue.
* ``melody-a.mid``, ``melody-b.mid``: two contrasting 2-bar melodies in 4/4 at 120 bpm, Interpolate
  endpoints for melody-2bar.
* ``drums-rock.mid`` (120 bpm), ``drums-funk.mid`` (100 bpm): 2-bar General MIDI grooves on
  channel 10, Interpolate endpoints for drums-2bar.
* ``sound-flute.wav``, ``sound-cello.wav``, ``sound-organ.wav``: one middle-C note each, sources
  for Morph.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.sequence import (  # noqa: E402
    DRUM_CHANNEL,
    SUSTAIN_CC,
    ControlChange,
    Note,
    NoteSequence,
    TempoChange,
    TimeSignature,
)

EXAMPLES_DIR = ROOT / "assets" / "examples"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")  # Debian's fluid-soundfont-gm
SEED = 20240607

# Sounds: (file stem, General MIDI program). One note each, NSynth style.
SOUNDS = (("flute", 73), ("cello", 42), ("organ", 19))
SOUND_PITCH = 60  # middle C: in every one of these instruments' ranges
SOUND_VELOCITY = 100

MIDI_FILES = (
    "piano-phrase.mid", "melody-a.mid", "melody-b.mid", "drums-rock.mid", "drums-funk.mid",
)
WAV_FILES = tuple(f"sound-{name}.wav" for name, _ in SOUNDS)

# Pitch names for readability: C4 = 60.
_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def p(name: str) -> int:
    """MIDI pitch of a note name such as ``C4``, ``F#5``, ``Bb3``."""
    step, rest = _NAMES[name[0]], name[1:]
    if rest[0] in "#b":
        step += 1 if rest[0] == "#" else -1
        rest = rest[1:]
    return 12 * (int(rest) + 1) + step


def _frame(qpm: float, name: str, instrument_names: dict[int, str]) -> NoteSequence:
    return NoteSequence(
        tempos=[TempoChange(0.0, qpm)],
        time_signatures=[TimeSignature(0.0, 4, 4)],
        instrument_names=dict(instrument_names),
        ticks_per_quarter=480,
        name=name,
    )


# ------------------------------------------------------------------------------ piano phrase
# (beat in the bar, length in beats, pitch, velocity): the right hand's melody, bar by bar.
_MELODY = (
    ((0.0, 1.5, "E5", 78), (1.5, 0.5, "D5", 66), (2.0, 1.0, "C5", 70), (3.0, 1.0, "G5", 84)),
    ((0.0, 2.0, "E5", 80), (2.0, 0.5, "D5", 64), (2.5, 0.5, "C5", 62), (3.0, 1.0, "A4", 68)),
    ((0.0, 1.0, "F5", 86), (1.0, 1.0, "E5", 76), (2.0, 1.0, "D5", 72), (3.0, 0.5, "B4", 64),
     (3.5, 0.5, "D5", 70)),
    ((0.0, 3.5, "C5", 74),),
)
# Inner voices the right hand adds under the last note.
_LAST_CHORD = (("E4", 52), ("G4", 50))
# Chords: (start beat within the 4 bars, left-hand eighth-note pattern for that span).
_HARMONY = (
    (0.0, ("C3", "G3", "E4", "G3", "C3", "G3", "E4", "G3")),  # C
    (4.0, ("A2", "E3", "C4", "E3", "A2", "E3", "C4", "E3")),  # Am
    (8.0, ("D3", "A3", "C4", "A3")),  # Dm7
    (10.0, ("G2", "D3", "B3", "F3")),  # G7
)


def piano_phrase(rng: random.Random) -> NoteSequence:
    """About 8 s of solo piano: four bars at 120 bpm and the last chord's ring, with the pedal."""
    qpm = 120.0
    beat = 60.0 / qpm
    seq = _frame(qpm, "Piano phrase", {0: "Piano"})

    def human(beats: float, spread: float = 0.012) -> float:
        # A slight drag into the cadence (the last bar stretches by about 5 %).
        t = beats * beat + max(0.0, beats - 12.0) * beat * 0.05
        return max(0.0, t + rng.uniform(-spread, spread))

    def vel(v: int, spread: int = 5) -> int:
        return max(1, min(127, v + rng.randint(-spread, spread)))

    # Right hand: melody, played a touch ahead of the beat now and then, as pianists do.
    for bar, notes in enumerate(_MELODY):
        for start, length, name, velocity in notes:
            b = bar * 4 + start
            on = human(b)
            off = human(b + length * 0.95)
            seq.notes.append(Note(p(name), vel(velocity), on, max(off, on + 0.08)))
    for name, velocity in _LAST_CHORD:
        on = human(12.0, 0.02)
        seq.notes.append(Note(p(name), vel(velocity), on, human(15.5)))

    # Left hand: broken chords in eighth notes, the first of each beat leaned on.
    for start, pattern in _HARMONY:
        for i, name in enumerate(pattern):
            b = start + 0.5 * i
            accent = 8 if i % 2 == 0 else 0
            accent += 6 if i == 0 else 0
            on = human(b)
            seq.notes.append(Note(p(name), vel(44 + accent, 4), on, human(b + 0.45)))
    # The cadence: a low octave and a rolled C major chord that rings.
    for k, name in enumerate(("C2", "C3", "G3", "E4")):
        on = human(12.0 + 0.12 * k, 0.008)
        seq.notes.append(Note(p(name), vel(58 - 3 * k, 3), on, human(15.5)))

    # Sustain pedal: lifted as each chord arrives and pressed again just after (legato pedal).
    changes = [start for start, _ in _HARMONY] + [12.0]
    seq.control_changes.append(ControlChange(human(0.1, 0.005), SUSTAIN_CC, 127))
    for b in changes[1:]:
        seq.control_changes.append(ControlChange(human(b, 0.005), SUSTAIN_CC, 0))
        seq.control_changes.append(ControlChange(human(b + 0.15, 0.005), SUSTAIN_CC, 127))
    seq.control_changes.append(ControlChange(human(15.9, 0.0), SUSTAIN_CC, 0))
    return seq.sorted()


# ------------------------------------------------------------------------------ melodies
# (beat, length in beats, pitch, velocity); two bars of 4/4 each.
_MELODY_A = (  # C major, rising then stepping home, legato
    (0.0, 1.0, "C5", 84), (1.0, 1.0, "E5", 76), (2.0, 1.5, "G5", 88), (3.5, 0.5, "A5", 72),
    (4.0, 0.5, "G5", 80), (4.5, 0.5, "F5", 70), (5.0, 1.0, "E5", 76), (6.0, 1.0, "D5", 72),
    (7.0, 1.0, "C5", 80),
)
_MELODY_B = (  # A minor, low, syncopated and detached, falling then turning on G#
    (0.0, 0.5, "E4", 90), (0.5, 0.5, "E4", 70), (1.0, 0.25, "G4", 76), (1.5, 0.75, "A4", 88),
    (2.5, 0.5, "B4", 74), (3.0, 0.75, "C5", 92), (3.75, 0.25, "B4", 66),
    (4.0, 0.5, "A4", 84), (4.5, 0.5, "F4", 70), (5.0, 0.5, "E4", 78), (5.5, 0.5, "D4", 68),
    (6.0, 0.75, "G#4", 86), (7.0, 0.5, "A4", 90),
)


def melody(notes: tuple[tuple[float, float, str, int], ...], name: str,
           articulation: float) -> NoteSequence:
    """A monophonic 2-bar melody at 120 bpm in 4/4, on a track named "Melody"."""
    qpm = 120.0
    beat = 60.0 / qpm
    seq = _frame(qpm, name, {0: "Melody"})
    for start, length, pitch, velocity in notes:
        seq.notes.append(Note(p(pitch), velocity, start * beat,
                              (start + length * articulation) * beat))
    return seq


# ------------------------------------------------------------------------------ drums
KICK, SNARE, SIDE_STICK, CLOSED_HAT, OPEN_HAT, CRASH, LOW_TOM, HIGH_TOM = 36, 38, 37, 42, 46, 49, \
    45, 50


def groove(qpm: float, name: str, hits: list[tuple[int, int, int]]) -> NoteSequence:
    """2 bars of drums from (sixteenth step 0..31, GM drum pitch, velocity) on channel 10."""
    step = 60.0 / qpm / 4
    seq = _frame(qpm, name, {DRUM_CHANNEL: "Drums"})
    for s, pitch, velocity in sorted(hits):
        seq.notes.append(Note(pitch, velocity, s * step, s * step + 0.5 * step, 0, True,
                              DRUM_CHANNEL))
    return seq


def drums_rock() -> NoteSequence:
    """A straight rock beat at 120 bpm: eighth-note hats, kick on 1 and 3, backbeat snare."""
    hits: list[tuple[int, int, int]] = []
    for bar in range(2):
        o = 16 * bar
        for e in range(8):
            if bar == 0 and e == 0:
                hits.append((o, CRASH, 100))
            else:
                hits.append((o + 2 * e, CLOSED_HAT, 88 if e % 2 == 0 else 64))
        hits += [(o + 0, KICK, 110), (o + 8, KICK, 104), (o + 10, KICK, 92)]
        hits += [(o + 4, SNARE, 112), (o + 12, SNARE, 116)]
    # The turn back: a fill on the last beat.
    hits = [h for h in hits if not (h[0] >= 28 and h[1] == CLOSED_HAT)]
    hits += [(28, HIGH_TOM, 96), (29, HIGH_TOM, 84), (30, LOW_TOM, 100), (31, LOW_TOM, 92)]
    return groove(120.0, "Rock groove", hits)


def drums_funk() -> NoteSequence:
    """A syncopated funk groove at 100 bpm: sixteenth hats, open hat lifts, ghost notes."""
    hits: list[tuple[int, int, int]] = []
    kicks = ((0, 112), (3, 90), (6, 100), (10, 106), (11, 84))
    ghosts = (7, 9, 14)
    for bar in range(2):
        o = 16 * bar
        for s in range(16):
            if s == 14 or (s == 6 and bar == 1):
                hits.append((o + s, OPEN_HAT, 84))
            else:
                hits.append((o + s, CLOSED_HAT, (92, 48, 68, 48)[s % 4]))
        hits += [(o + s, KICK, v) for s, v in kicks]
        hits += [(o + 4, SNARE, 116), (o + 12, SNARE, 118)]
        hits += [(o + s, SNARE, 34) for s in ghosts]
    hits.append((31, SNARE, 96))  # a pickup into the loop's top
    return groove(100.0, "Funk groove", hits)


# ------------------------------------------------------------------------------ sounds
def render_sounds(out_dir: Path, soundfont: str | Path | None = None) -> list[Path]:
    """One 4-second note (3 s held, 1 s release) per instrument, 16 kHz mono, loudness-normalised
    as the NSynth data set's notes are."""
    from models.audio_io import Audio, write_audio
    from models.nsynth.dataset import SAMPLE_RATE, normalize_note, render_gm_note
    from models.render import Renderer

    written = []
    with Renderer(soundfont=soundfont or SOUNDFONT, sample_rate=SAMPLE_RATE) as renderer:
        # A fresh synth's never-used voices start their first block slightly differently:
        # render once and throw it away, so every file comes from a used voice.
        render_gm_note(renderer, SOUNDS[0][1], SOUND_PITCH, SOUND_VELOCITY)
        for name, program in SOUNDS:
            x = normalize_note(render_gm_note(renderer, program, SOUND_PITCH, SOUND_VELOCITY))
            path = out_dir / f"sound-{name}.wav"
            write_audio(path, Audio(x, SAMPLE_RATE), subtype="PCM_16")
            written.append(path)
    return written


# ------------------------------------------------------------------------------ main
def sequences() -> dict[str, NoteSequence]:
    """The MIDI examples by file name, freshly composed."""
    return {
        "piano-phrase.mid": piano_phrase(random.Random(SEED)),
        "melody-a.mid": melody(_MELODY_A, "Melody A", articulation=1.0),
        "melody-b.mid": melody(_MELODY_B, "Melody B", articulation=0.8),
        "drums-rock.mid": drums_rock(),
        "drums-funk.mid": drums_funk(),
    }


def main(out_dir: str | Path = EXAMPLES_DIR, sounds: bool = True,
         soundfont: str | Path | None = None) -> list[Path]:
    """Write every example into ``out_dir`` (created if needed); the paths written."""
    from models.midi_io import write_midi

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, seq in sequences().items():
        write_midi(seq, out / file_name)
        written.append(out / file_name)
    if sounds:
        written += render_sounds(out, soundfont)
    return written


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR,
                        help=f"folder to write (default {EXAMPLES_DIR.relative_to(ROOT)})")
    parser.add_argument("--soundfont", type=Path, default=None,
                        help=f"General MIDI soundfont for the sounds (default {SOUNDFONT})")
    parser.add_argument("--no-sounds", action="store_true", help="write the MIDI files only")
    args = parser.parse_args(argv)
    from models.errors import CadenzaError

    try:
        for path in main(args.out, sounds=not args.no_sounds, soundfont=args.soundfont):
            print(f"{path}  ({path.stat().st_size} bytes)")
    except CadenzaError as exc:
        print(f"make_examples: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
