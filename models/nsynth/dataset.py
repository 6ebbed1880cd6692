"""An NSynth-like data set rendered with FluidSynth: one 4-second note per file at 16 kHz.

Every (program, pitch, velocity) is rendered dry (no reverb) as a note held 3 s and released for
1 s, mixed to mono, loudness-normalised (the same normalisation :mod:`models.nsynth.morph`
applies to what it encodes) and written as a 16-bit WAV. Renders whose RMS is below a threshold
(a program with no sample at that pitch) are dropped. The validation split is by instrument: whole
programs, one per General MIDI family, so validation timbres are never seen in training.

Layout::

    DIR/manifest.json   {"sample_rate", "seconds", "valid_programs", "notes": [...], ...}
    DIR/train/p000-n060-v100.wav
    DIR/valid/p009-n060-v100.wav
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models import files as atomic
from models.errors import CadenzaError
from models.nsynth.signal import estimate_f0
from models.sequence import GM_NAMES

SAMPLE_RATE = 16000
SECONDS_HELD = 3.0
SECONDS_RELEASE = 1.0
NOTE_SECONDS = SECONDS_HELD + SECONDS_RELEASE
NOTE_SAMPLES = int(NOTE_SECONDS * SAMPLE_RATE)
SILENCE_RMS_DB = -60.0
TARGET_RMS_DB = -20.0
MAX_PEAK = 0.95
MANIFEST = "manifest.json"

GM_FAMILIES = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive",
    "sound effects",
)
DEFAULT_PROGRAMS = tuple(range(112))  # every pitched family; percussive and effects left out
DEFAULT_PITCHES = tuple(range(36, 97, 3))
DEFAULT_VELOCITIES = (75, 127)


def gm_family(program: int) -> str:
    return GM_FAMILIES[int(program) // 8]


def gm_name(program: int) -> str:
    return GM_NAMES[int(program)]


def parse_gm(text: str) -> int:
    """A General MIDI program from ``gm:73``, ``73``, ``gm:flute`` or ``church organ`` (0..127)."""
    raw = text.strip()
    if raw.lower().startswith("gm:"):
        raw = raw[3:]
    if raw.isdigit():
        program = int(raw)
        if not 0 <= program <= 127:
            raise CadenzaError(f"General MIDI programs are 0..127, not {program}")
        return program
    want = raw.lower().replace("_", " ").replace("-", " ").strip()
    if not want:
        raise CadenzaError(f"not a General MIDI instrument: '{text}'")
    names = [gm_name(p).lower() for p in range(128)]
    for p, name in enumerate(names):
        if name == want:
            return p
    for p, name in enumerate(names):
        if name.startswith(want) or want in name:
            return p
    raise CadenzaError(f"no General MIDI instrument is called '{text}' (try gm:0 .. gm:127)")


def default_valid_programs(programs: Sequence[int]) -> list[int]:
    """One program per family among ``programs`` (deterministic), for the unseen-timbre split."""
    chosen = []
    by_family: dict[int, list[int]] = {}
    for p in sorted(set(programs)):
        by_family.setdefault(p // 8, []).append(p)
    for family, members in sorted(by_family.items()):
        if len(members) < 2 and len(by_family) > 1:
            continue  # keep a family's only program for training
        chosen.append(members[(family * 5 + 3) % len(members)])
    if not chosen and len(by_family) > 1:
        chosen.append(max(programs))  # a handful of single-program families: hold out the last
    return chosen


def rms_db(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64))))) if x.size else 0.0
    return float(20.0 * np.log10(rms)) if rms > 0 else float("-inf")


def normalize_note(x: np.ndarray) -> np.ndarray:
    """Loudness normalisation of a mono note: RMS to -20 dBFS, the gain capped at peak 0.95."""
    x = np.asarray(x, np.float32)
    if not x.size:
        return x.copy()
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    peak = float(np.max(np.abs(x)))
    if rms <= 1e-9 or peak <= 0:
        return x.copy()
    gain = min(10.0 ** (TARGET_RMS_DB / 20.0) / rms, MAX_PEAK / peak)
    return (x * np.float32(gain)).astype(np.float32)


def fit_length(x: np.ndarray, n: int = NOTE_SAMPLES) -> np.ndarray:
    """Cut or pad (with silence at the end) to exactly ``n`` samples."""
    x = np.asarray(x, np.float32)[:n]
    return np.pad(x, (0, n - x.shape[0])) if x.shape[0] < n else x


@dataclass
class NoteRecord:
    file: str
    program: int
    family: str
    name: str
    pitch: int
    velocity: int
    split: str
    rms_db: float


def render_gm_note(renderer: object, program: int, pitch: int, velocity: int = 100) -> np.ndarray:
    """One 4-second mono note at 16 kHz from a :class:`models.render.Renderer` (not normalised)."""
    audio = renderer.render_note(  # type: ignore[attr-defined]
        int(program), int(pitch), int(velocity), SECONDS_HELD, SECONDS_RELEASE
    )
    return fit_length(audio.mono().samples[:, 0])


def gm_renderer(soundfont: str | Path | None = None) -> object:
    from models.render import Renderer

    return Renderer(soundfont=soundfont, sample_rate=SAMPLE_RATE, reverb=False)


def build_dataset(
    out: str | Path,
    soundfont: str | Path | None = None,
    programs: Iterable[int] = DEFAULT_PROGRAMS,
    pitches: Iterable[int] = DEFAULT_PITCHES,
    velocities: Iterable[int] = DEFAULT_VELOCITIES,
    valid_programs: Iterable[int] | None = None,
    silence_db: float = SILENCE_RMS_DB,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Render the set into ``out``; returns the manifest (also written to ``out/manifest.json``)."""
    import soundfile

    programs = sorted({int(p) for p in programs})
    pitches = sorted({int(p) for p in pitches})
    velocities = sorted({int(v) for v in velocities})
    for p in programs:
        if not 0 <= p <= 127:
            raise CadenzaError(f"General MIDI programs are 0..127, not {p}")
    for p in pitches:
        if not 0 <= p <= 127:
            raise CadenzaError(f"MIDI pitches are 0..127, not {p}")
    for v in velocities:
        if not 1 <= v <= 127:
            raise CadenzaError(f"velocities are 1..127, not {v}")
    if not programs or not pitches or not velocities:
        raise CadenzaError("the data set needs at least one program, pitch and velocity")
    valid = sorted(set(default_valid_programs(programs) if valid_programs is None
                       else (int(p) for p in valid_programs)) & set(programs))
    out = Path(out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "valid").mkdir(parents=True, exist_ok=True)
    renderer = gm_renderer(soundfont)
    records: list[NoteRecord] = []
    dropped = 0
    total = len(programs) * len(pitches) * len(velocities)
    done = 0
    try:
        for program in programs:
            split = "valid" if program in valid else "train"
            family, name = gm_family(program), gm_name(program)
            for pitch in pitches:
                for velocity in velocities:
                    x = render_gm_note(renderer, program, pitch, velocity)
                    level = rms_db(x)
                    done += 1
                    if progress is not None:
                        progress(done, total)
                    if not level > silence_db:
                        dropped += 1
                        continue
                    rel = f"{split}/p{program:03d}-n{pitch:03d}-v{velocity:03d}.wav"
                    with atomic.replacing(out / rel) as tmp:  # a rerun never half-writes
                        soundfile.write(str(tmp), normalize_note(x), SAMPLE_RATE,
                                        subtype="PCM_16", format="WAV")
                    records.append(NoteRecord(rel, program, family, name, pitch, velocity,
                                              split, round(level, 2)))
    finally:
        renderer.close()  # type: ignore[attr-defined]
    manifest = {
        "sample_rate": SAMPLE_RATE,
        "seconds": NOTE_SECONDS,
        "seconds_held": SECONDS_HELD,
        "soundfont": str(getattr(renderer, "soundfont", soundfont)),
        "programs": programs,
        "pitches": pitches,
        "velocities": velocities,
        "valid_programs": valid,
        "silence_db": silence_db,
        "dropped_silent": dropped,
        "notes": [asdict(r) for r in records],
    }
    atomic.write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CadenzaError(f"not an NSynth data set (no {MANIFEST}): {directory}; "
                           "make one with 'cadenza dataset nsynth'")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise CadenzaError(f"unreadable manifest {path}: {exc}") from exc


def card_figures(directory: str | Path, manifest: dict) -> dict:
    """What a model card tells of the data set a model trained on: its folder, its training and
    validation notes and the validation split's programs."""
    records = manifest.get("notes", [])
    train_notes = sum(1 for n in records if n["split"] == "train")
    return {"data": str(directory), "train_notes": train_notes,
            "val_notes": len(records) - train_notes,
            "valid_programs": manifest.get("valid_programs")}


def load_split(directory: str | Path, split: str) -> tuple[np.ndarray, list[dict]]:
    """All notes of a split as int16 ``(notes, 64000)`` plus their manifest records."""
    import soundfile

    manifest = read_manifest(directory)
    notes = [n for n in manifest["notes"] if n["split"] == split]
    out = np.zeros((len(notes), NOTE_SAMPLES), np.int16)
    for i, n in enumerate(notes):
        try:
            x, sr = soundfile.read(str(Path(directory) / n["file"]), dtype="int16")
        except (RuntimeError, OSError, soundfile.SoundFileError) as exc:
            raise CadenzaError(f"cannot read {n['file']} of the data set: {exc}") from exc
        if sr != SAMPLE_RATE:
            raise CadenzaError(f"{n['file']} is at {sr} Hz, not {SAMPLE_RATE}")
        x = x[:NOTE_SAMPLES]
        out[i, : x.shape[0]] = x
    return out, notes


F0_CACHE = "f0.json"


def note_f0s(directory: str | Path, records: list[dict], audio: np.ndarray) -> np.ndarray:
    """Each note's fundamental (Hz, NaN when unpitched), by YIN on its held part.

    About 8 ms a note; cached in ``DIR/f0.json`` (when the folder is writable) so that a second
    run starts at once.
    """
    path = Path(directory) / F0_CACHE
    cache: dict[str, float | None] = {}
    if path.is_file():
        try:
            cache = json.loads(path.read_text())
        except ValueError:
            cache = {}
    out = np.full(len(records), np.nan)
    missing = False
    for i, rec in enumerate(records):
        if rec["file"] in cache:
            v = cache[rec["file"]]
        else:
            missing = True
            f0 = estimate_f0(audio[i].astype(np.float32) / 32768.0, SAMPLE_RATE)
            v = round(f0, 3) if np.isfinite(f0) else None
            cache[rec["file"]] = v
        out[i] = np.nan if v is None else float(v)
    if missing:
        with contextlib.suppress(CadenzaError):  # a cache: the next run computes it again
            atomic.write_text(path, json.dumps(cache) + "\n")
    return out
