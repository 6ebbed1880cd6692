"""Morph instruments: a morph rendered at a set of pitches, saved as WAVs + SFZ, playable.

NSynth Super rendered its morphs every 4 semitones; :func:`build_instrument` does the same
(16 pitches from C2 by default). A General MIDI source (``gm:flute``) is rendered at each pitch;
an audio file is pitch-shifted there by resampling from its own detected pitch. All pitches are
decoded together as one batch. The folder holds ``morph-pNNN.wav`` per pitch and
``instrument.sfz`` (regions with ``pitch_keycenter``, ``lokey``/``hikey`` covering 0..127, and an
``ampeg_release``), which other samplers load too. :class:`MorphInstrument` plays it: the nearest
rendered note repitched by resampling, shaped by an ADSR envelope.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models import limits
from models.errors import CadenzaError
from models.files import replacing_folder
from models.nsynth import dataset as ds
from models.nsynth.signal import estimate_f0

DEFAULT_PITCHES = tuple(36 + 4 * i for i in range(16))  # C2 .. C7, every 4 semitones
SFZ_FILE = "instrument.sfz"
INFO_FILE = "instrument.json"


def shift_pitch(x: np.ndarray, semitones: float, sample_rate: int = ds.SAMPLE_RATE,
                out_rate: int | None = None) -> np.ndarray:
    """Repitch by resampling (the length changes with the pitch, like a tape or a sampler)."""
    import soxr

    out_rate = sample_rate if out_rate is None else int(out_rate)
    ratio = 2.0 ** (float(semitones) / 12.0)
    x = np.asarray(x, np.float32)
    if abs(ratio - 1.0) < 1e-9 and out_rate == sample_rate:
        return x.copy()
    return np.asarray(soxr.resample(x, sample_rate * ratio, out_rate, quality="HQ"), np.float32)


def midi_of(f0: float) -> float:
    return 69.0 + 12.0 * float(np.log2(f0 / 440.0))


def key_ranges(pitches: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(lokey, hikey, keycenter)`` per pitch: split halfway, the ends stretched to 0 and 127."""
    ps = sorted(int(p) for p in pitches)
    out = []
    for i, p in enumerate(ps):
        lo = 0 if i == 0 else (ps[i - 1] + p) // 2 + 1
        hi = 127 if i == len(ps) - 1 else (p + ps[i + 1]) // 2
        out.append((lo, hi, p))
    return out


def write_sfz(directory: Path, files: Sequence[str], pitches: Sequence[int],
              release: float) -> Path:
    lines = ["// Cadenza morph instrument (NSynth WaveNet autoencoder)", "<group>",
             f"ampeg_release={release:g}", "ampeg_attack=0.005", "amp_veltrack=100"]
    order = np.argsort(pitches)
    for (lo, hi, key), i in zip(key_ranges(pitches), order, strict=True):
        lines.append(f"<region> sample={files[i]} pitch_keycenter={key} lokey={lo} hikey={hi}")
    path = directory / SFZ_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_sfz(path: str | Path) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The ``<region>`` opcodes of an SFZ file (group opcodes merged in) and the group's."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limits.SFZ_MAX_BYTES + 1)
    except OSError as exc:
        raise CadenzaError(f"{path}: cannot read the SFZ file ({exc.strerror or exc})") from exc
    if len(raw) > limits.SFZ_MAX_BYTES:
        raise CadenzaError(f"{path}: more than the {limits.SFZ_MAX_BYTES // 1024} kB an SFZ "
                           f"file may have")
    text = re.sub(r"//[^\n]*", "", raw.decode("utf-8", errors="replace"))
    regions: list[dict[str, str]] = []
    group: dict[str, str] = {}
    current: dict[str, str] | None = None
    for tag, body in re.findall(r"<(\w+)>([^<]*)", text):
        opcodes = dict(re.findall(r"(\w+)=(\S+)", body))
        if tag == "region":
            current = {**group, **opcodes}
            regions.append(current)
        elif tag in ("group", "global", "control"):
            group.update(opcodes)
    return regions, group


@dataclass
class MorphInstrument:
    """A playable morph: one rendered note per key center (mono float32 at ``sample_rate``)."""

    samples: dict[int, np.ndarray]
    ranges: list[tuple[int, int, int]]
    sample_rate: int = ds.SAMPLE_RATE
    release: float = 0.3
    attack: float = 0.005
    decay: float = 0.2
    sustain: float = 0.8

    @classmethod
    def load(cls, directory: str | Path) -> MorphInstrument:
        """Read a folder written by :func:`build_instrument` (or any SFZ of WAV regions)."""
        from models.audio_io import read_audio

        root = Path(directory)
        sfz = root / SFZ_FILE
        if not sfz.is_file():
            found = sorted(root.glob("*.sfz"))
            if not found:
                raise CadenzaError(f"no SFZ instrument in {directory}")
            sfz = found[0]
        regions, group = parse_sfz(sfz)
        if not regions:
            raise CadenzaError(f"{sfz} has no regions")
        if len(regions) > 128:
            raise CadenzaError(f"{sfz}: {len(regions)} regions, more than the 128 an "
                               f"instrument may have")
        samples: dict[int, np.ndarray] = {}
        ranges = []
        rate = None
        for number, r in enumerate(regions, 1):
            try:
                key = int(r["pitch_keycenter"])
                lo, hi = int(r.get("lokey", key)), int(r.get("hikey", key))
            except (KeyError, ValueError) as exc:
                raise CadenzaError(f"{sfz}: a region lacks a usable pitch_keycenter") from exc
            if not all(0 <= k <= 127 for k in (key, lo, hi)):
                raise CadenzaError(f"{sfz}: region {number} has a key outside MIDI's 0..127")
            if not r.get("sample"):
                raise CadenzaError(f"{sfz}: region {number} has no sample= (which sound file "
                                   f"it plays)")
            sample = (root / r["sample"].replace("\\", "/")).resolve()
            if not sample.is_file():
                raise CadenzaError(f"{sfz}: region {number} plays {r['sample']}, which does not "
                                   f"exist")
            limits.audio_source(sample)
            audio = read_audio(sample).mono()
            if rate is None:
                rate = audio.sample_rate
            if audio.sample_rate != rate:
                audio = audio.resampled(rate)
            samples[key] = audio.samples[:, 0].copy()
            ranges.append((lo, hi, key))
        text = group.get("ampeg_release", regions[0].get("ampeg_release", "0.3"))
        try:
            release = limits.number(text, "ampeg_release", 0.0, limits.MAX_RELEASE, unit=" s")
        except CadenzaError as exc:
            raise CadenzaError(f"{sfz}: {exc}") from None
        return cls(samples, sorted(ranges), int(rate or ds.SAMPLE_RATE), release=release)

    @property
    def pitches(self) -> list[int]:
        return sorted(self.samples)

    def key_center(self, pitch: int) -> int:
        for lo, hi, key in self.ranges:
            if lo <= pitch <= hi:
                return key
        return min(self.samples, key=lambda k: abs(k - pitch))

    def envelope(self, n: int, held: int, rate: int) -> np.ndarray:
        """ADSR: linear attack, exponential-ish decay to ``sustain``, linear release after
        ``held`` samples (from whatever level the note had reached)."""
        t = np.arange(n, dtype=np.float32) / rate
        a = max(self.attack, 1e-4)
        env = np.where(t < a, t / a,
                       self.sustain + (1 - self.sustain) * np.exp(-(t - a) / max(self.decay, 1e-4)))
        env = env.astype(np.float32)
        if held < n:
            level = env[held - 1] if held > 0 else 0.0
            rel = np.arange(n - held, dtype=np.float32) / (max(self.release, 1e-4) * rate)
            env[held:] = level * np.maximum(0.0, 1.0 - rel)
        return env

    def note(self, pitch: int, velocity: int = 100, seconds: float = 1.0,
             sample_rate: int | None = None) -> np.ndarray:
        """Mono float32: ``seconds`` held then the release, at ``sample_rate`` (default own)."""
        if not 0 <= int(pitch) <= 127:
            raise CadenzaError(f"pitch must be 0..127, not {pitch}")
        if not 0 <= int(velocity) <= 127:
            raise CadenzaError(f"velocity must be 0..127, not {velocity}")
        if not (np.isfinite(seconds) and 0 <= seconds <= 60):
            raise CadenzaError(f"a note lasts 0..60 s, not {seconds}")
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        key = self.key_center(int(pitch))
        src = shift_pitch(self.samples[key], int(pitch) - key, self.sample_rate, rate)
        held = int(round(seconds * rate))
        n = held + int(round(self.release * rate))
        out = np.zeros(n, np.float32)
        m = min(n, src.shape[0])
        out[:m] = src[:m]
        gain = (int(velocity) / 127.0) ** 2
        return (out * self.envelope(n, held, rate) * np.float32(gain)).astype(np.float32)


def _source_at(morpher: Any, source: Any, pitch: int, cache: dict) -> np.ndarray:
    if isinstance(source, str) and source.lower().startswith("gm:"):
        return morpher.source_audio(source, pitch=pitch)
    key = id(source) if not isinstance(source, (str, Path)) else str(source)
    if key not in cache:
        x = morpher.source_audio(source)
        f0 = estimate_f0(x, ds.SAMPLE_RATE)
        cache[key] = (x, midi_of(f0) if np.isfinite(f0) else 60.0)
    x, base = cache[key]
    return ds.normalize_note(ds.fit_length(shift_pitch(x, pitch - base)))


def save_instrument(root: str | Path, pitches: Sequence[int], notes: Sequence[Any],
                    release: float, info: dict[str, Any] | None = None) -> Path:
    """Write an instrument folder: one WAV per pitch (``notes``: :class:`Audio`), the SFZ and
    ``instrument.json``. The folder is built beside ``root`` and replaces it as a whole: a
    kill, a full disk or an error leaves the old instrument exactly as it was, never old and
    new notes mixed, and an error says so in one line."""
    from models.audio_io import write_audio

    root = Path(root)
    try:
        with replacing_folder(root) as building:
            files = []
            for p, note in zip(pitches, notes, strict=True):
                name = f"morph-p{int(p):03d}.wav"
                write_audio(building / name, note)
                files.append(name)
            write_sfz(building, files, pitches, release)
            (building / INFO_FILE).write_text(json.dumps(
                {**(info or {}), "pitches": [int(p) for p in pitches], "files": files},
                indent=1) + "\n")
    except CadenzaError as exc:
        kept = root.is_dir() and "kept" not in str(exc)
        raise CadenzaError(f"{exc}{' (the old instrument was kept)' if kept else ''}") from exc
    except OSError as exc:  # writing inside the new folder, before it replaces the old one
        kept = " (the old instrument was kept)" if root.is_dir() else ""
        raise CadenzaError(f"{root}: cannot write the instrument: "
                           f"{exc.strerror or exc}{kept}") from exc
    return root


def build_instrument(
    morpher: Any,
    sources: Sequence[Any],
    out: str | Path,
    amount: float = 0.5,
    xy: tuple[float, float] | None = None,
    pitches: Sequence[int] = DEFAULT_PITCHES,
    release: float = 0.3,
    progress: Any = None,
    cancel: Any = None,
    temperature: float = 1.0,
    seed: int = 0,
    sample_rate: int | None = None,
) -> MorphInstrument:
    """Render the morph of 2 (``amount``) or 4 (``xy``) sources at ``pitches`` into ``out``.

    ``sample_rate``: the WAVs' rate (resampled from the model's; default the model's own).
    """
    from models.audio_io import Audio
    from models.nsynth.morph import mix, mix_weights, mix_xy

    if len(sources) not in (2, 4):
        raise CadenzaError(f"a morph instrument takes 2 or 4 sources, not {len(sources)}")
    if len(sources) == 4 and xy is None:
        xy = (0.5, 0.5)
    if len(sources) == 2 and xy is not None:
        raise CadenzaError("--xy needs four sources")
    pitches = sorted({int(p) for p in pitches})
    if not pitches or not all(0 <= p <= 127 for p in pitches):
        raise CadenzaError("pitches must be MIDI numbers 0..127")
    if len(pitches) > limits.MAX_INSTRUMENT_PITCHES:
        raise CadenzaError(f"{len(pitches)} pitches, more than the "
                           f"{limits.MAX_INSTRUMENT_PITCHES} an instrument may have")
    limits.number(release, "the release", 0.0, limits.MAX_RELEASE, unit=" s")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise CadenzaError(f"{root}: is a file, not a folder")
    if not root.parent.is_dir():
        raise CadenzaError(f"{root}: the folder {root.parent} does not exist")

    def report(fraction: float) -> None:
        if progress is not None:
            progress(fraction)

    # Encoding takes a tenth of the bar, decoding most of it, writing the last few percent.
    report(0.0)
    cache: dict = {}
    audio = []
    for i, p in enumerate(pitches):
        audio += [_source_at(morpher, s, p, cache) for s in sources]
        report(0.05 * (i + 1) / len(pitches))
    emb = morpher.encode_batch(audio).reshape(len(pitches), len(sources), -1,
                                              morpher.config.latent_dim)
    mixed = np.stack([mix_xy(list(e), *xy) if xy is not None else mix(list(e), amount)
                      for e in emb])
    # each key centre plays at the pitch, and with the loudness, its (shifted) sources have there
    weights = mix_weights(len(sources), amount, xy)
    n = len(sources)
    guides = [morpher.guide(audio[i * n:(i + 1) * n], weights) for i in range(len(pitches))]
    report(0.1)
    outs = morpher.decode(mixed, progress=lambda f: report(0.1 + 0.85 * f), cancel=cancel,
                          temperature=temperature, seed=seed, f0=[g[0] for g in guides],
                          envelope=[g[1] for g in guides])
    if not all(np.isfinite(a.samples).all() for a in outs):
        raise CadenzaError("the morph came out NaN: the model is broken (nothing was written)")
    notes = []
    for a in outs:
        note = Audio(ds.normalize_note(a.samples[:, 0]), a.sample_rate)
        if sample_rate and sample_rate != note.sample_rate:
            note = note.resampled(sample_rate)
        notes.append(note)
    save_instrument(root, pitches, notes, release, {
        "sources": [str(s) if isinstance(s, (str, Path)) else "audio" for s in sources],
        "amount": None if xy is not None else amount, "xy": list(xy) if xy else None,
        "sample_rate": int(sample_rate or morpher.config.sample_rate),
        "model": getattr(morpher, "name", ""),
    })
    report(1.0)
    return MorphInstrument.load(root)
