"""Morph instruments: a morph rendered at a set of pitches, saved as WAVs + SFZ, playable.

NSynth Super rendered its morphs every 4 semitones; :func:`build_instrument` does the same
(16 pitches from C2 by default). A General MIDI source (``gm:flute``) is rendered at each pitch;
an audio file is pitch-shifted there by resampling from its own detected pitch, and a note
shifted up (so shortened) is held again to its full length through a loop of its steady part.
All pitches are decoded together as one batch, at the export rate when the model renders at any
rate (:func:`renders_at_any_rate`), else at its own rate and resampled (soxr).

Each note is then made playable (:func:`finish_notes`): its DC removed (a zero-phase 12 Hz
high-pass, then the last of the mean under a smooth window), a loop chosen on the steady part of
its held segment (:func:`find_loop`: after the attack, before the level falls 18 dB, its ends on
rising zero crossings) whose level is held steady and whose end is crossfaded into the samples
before its start, so that the jump back is seamless; after the loop the file plays the loop's
start once more, fading out, for players that ignore loops. All notes get the same level over
their loops (neighbouring keys match).

The folder holds ``morph-pNNN.wav`` per pitch and ``instrument.sfz`` (regions with
``pitch_keycenter``, ``lokey``/``hikey`` covering 0..127, ``loop_mode=loop_continuous``,
``loop_start``/``loop_end`` in samples, and an ``ampeg_release``), which other samplers load too.
:class:`MorphInstrument` plays it: the nearest rendered note repitched by resampling, held
through its loop while the key is down, shaped by an ADSR envelope.
"""

from __future__ import annotations

import inspect
import json
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import limits
from models.errors import CadenzaError
from models.files import replacing_folder
from models.nsynth import dataset as ds
from models.nsynth.signal import estimate_f0

DEFAULT_PITCHES = tuple(36 + 4 * i for i in range(16))  # C2 .. C7, every 4 semitones
DEFAULT_SAMPLE_RATE = 48000  # an instrument's WAVs, unless asked otherwise
SFZ_FILE = "instrument.sfz"
INFO_FILE = "instrument.json"
LOOP_MODES = ("no_loop", "one_shot", "loop_continuous", "loop_sustain")
LOOP_FRAME = 0.01  # seconds: the level frames the loop is chosen on
LOOP_RANGE_DB = 18.0  # the loop ends before the level falls this far below the note's peak
MIN_LOOP = 0.04  # seconds: a shorter steady part gets no loop
LOOP_FADE = 0.03  # seconds: the crossfade baked in before the loop end
HELD_LEVEL_DB = -20.0  # every note's level over its loop (RMS, dBFS), peaks permitting
DC_CUTOFF = 12.0  # Hz
END_FADE = 0.02  # seconds: a note without a loop fades out this fast at its end


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


def renders_at_any_rate(morpher: Any) -> bool:
    """Whether ``morpher.decode`` renders directly at a rate it is given (``sample_rate=``).

    A model says so with a boolean ``renders_at_any_rate`` attribute; without one, a ``decode``
    that takes a ``sample_rate`` argument is taken to. The WaveNet :class:`Morpher` does not (it
    makes 16 kHz, resampled after); the DDSP one does."""
    flag = getattr(morpher, "renders_at_any_rate", None)
    if isinstance(flag, bool):
        return flag
    try:
        return "sample_rate" in inspect.signature(morpher.decode).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------- loops
@dataclass(frozen=True)
class Loop:
    """A sample's sustain loop: ``start`` is its first sample, ``end`` one past its last (the
    SFZ's ``loop_end`` is ``end - 1``); ``mode`` ``loop_continuous`` loops until the voice has
    faded, ``loop_sustain`` only while the key is held."""

    start: int
    end: int
    mode: str = "loop_continuous"

    @property
    def length(self) -> int:
        return self.end - self.start

    def scaled(self, ratio: float) -> Loop:
        """The same loop in a sample resampled by ``ratio`` (new rate / old rate)."""
        start = int(round(self.start * ratio))
        return Loop(start, max(start + 2, int(round(self.end * ratio))), self.mode)


def _frame_levels(x: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """RMS per :data:`LOOP_FRAME` frame, smoothed over five frames, and the frame length."""
    n = max(1, int(round(rate * LOOP_FRAME)))
    m = x.shape[0] // n
    power = np.mean(np.square(x[:m * n].astype(np.float64)).reshape(m, n), axis=1)
    if m >= 5:
        power = np.convolve(np.pad(power, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    return np.sqrt(power), n


def _rising_zero(x: np.ndarray, near: int, reach: int, lo: int, hi: int) -> int:
    """The rising zero crossing nearest ``near`` within ``reach`` samples (and ``lo..hi``)."""
    a, b = max(lo, near - reach, 1), min(hi, near + reach, x.shape[0] - 1)
    if b <= a:
        return near
    seg = np.arange(a, b)
    up = seg[(x[seg - 1] < 0) & (x[seg] >= 0)]
    return int(up[np.argmin(np.abs(up - near))]) if up.size else near


def find_loop(x: np.ndarray, rate: int, held: float = ds.SECONDS_HELD) -> Loop | None:
    """A sustain loop on the held segment (the first ``held`` seconds): from 50 ms after the
    attack (the first frame within 6 dB of the loudest) to where the level first falls
    :data:`LOOP_RANGE_DB` below the loudest, both ends on rising zero crossings; None when that
    part is shorter than :data:`MIN_LOOP` (or the note is silent)."""
    x = np.asarray(x, np.float32)
    level, n = _frame_levels(x, rate)
    if level.size < 8 or level.max() <= 1e-6:
        return None
    db = 20.0 * np.log10(level + 1e-12)
    peak = int(np.argmax(db[: max(1, int(held / LOOP_FRAME))]))
    attacked = int(np.flatnonzero(db[: peak + 1] >= db[peak] - 6.0)[0])
    first = attacked + int(round(0.05 / LOOP_FRAME))
    last = min(db.shape[0], int(held / LOOP_FRAME))
    if last - first < MIN_LOOP / LOOP_FRAME:
        return None
    below = np.flatnonzero(db[first:last] < db[peak] - LOOP_RANGE_DB)
    end = first + (int(below[0]) if below.size else last - first)
    if end - first < MIN_LOOP / LOOP_FRAME:
        return None
    reach = n  # one frame either way
    start = _rising_zero(x, first * n, reach, 1, end * n)
    stop = _rising_zero(x, end * n, reach, start + int(MIN_LOOP * rate / 2), x.shape[0] - 1)
    if stop - start < int(MIN_LOOP * rate / 2):
        return None
    return Loop(start, stop)


def _steady(x: np.ndarray, loop: Loop, rate: int) -> np.ndarray:
    """``x`` with its level held at the loop's median level (a smooth gain curve, at most 24 dB
    either way) from just before the loop (the samples its end is crossfaded with) onwards;
    the attack before that is as it was."""
    level, n = _frame_levels(x, rate)
    first, end = loop.start // n, min(level.shape[0], max(loop.end // n, loop.start // n + 1))
    lead = max(0, first - int(np.ceil(LOOP_FADE / LOOP_FRAME)) - 1)
    target = float(np.median(level[first:end]))
    gain = np.ones(level.shape[0])
    gain[lead:end] = np.clip(target / np.maximum(level[lead:end], 1e-9), 1 / 16, 16)
    gain[end:] = gain[end - 1]
    k = 9  # smoothed over 90 ms, so the gain follows the level, not the waveform
    smooth = np.convolve(np.pad(gain, k // 2, mode="edge"), np.ones(k) / k, mode="valid")
    centers = (np.arange(level.shape[0]) + 0.5) * n
    curve = np.interp(np.arange(x.shape[0]), centers, smooth)
    return (x * curve).astype(np.float32)


def bake_loop(x: np.ndarray, loop: Loop, rate: int) -> np.ndarray:
    """The loop made seamless: its last samples crossfaded (equal power) into the ones before
    its start, so the jump from ``end - 1`` back to ``start`` continues the sound; after the
    loop, its start once more, faded out (for players that ignore the loop)."""
    y = np.array(x, np.float32)
    fade = max(1, min(int(LOOP_FADE * rate), loop.length // 3, loop.start))
    t = (np.arange(fade) + 0.5) / fade
    out_w, in_w = np.cos(0.5 * np.pi * t), np.sin(0.5 * np.pi * t)
    y[loop.end - fade: loop.end] = (y[loop.end - fade: loop.end] * out_w
                                    + y[loop.start - fade: loop.start] * in_w)
    after = min(loop.length, int(0.5 * rate))
    tail = y[loop.start: loop.start + after] * np.cos(0.5 * np.pi * np.arange(after) / after)
    return np.concatenate([y[: loop.end], tail.astype(np.float32)])


def loop_positions(n: int, loop: Loop | None, release_at: int | None = None) -> np.ndarray:
    """The sample index a player reads at each of ``n`` output samples (no repitch): straight
    on, wrapping back to ``loop.start`` at ``loop.end`` (for ``loop_sustain`` only before
    ``release_at``, then straight on from there)."""
    idx = np.arange(n, dtype=np.int64)
    if loop is None or loop.length < 1 or loop.mode not in ("loop_continuous", "loop_sustain"):
        return idx
    stop = n if loop.mode == "loop_continuous" or release_at is None else min(n, release_at)
    head = idx[:stop]
    idx[:stop] = np.where(head >= loop.end, loop.start + (head - loop.start) % loop.length,
                          head)
    if stop < n:
        idx[stop:] = (idx[stop - 1] + 1 if stop else 0) + np.arange(n - stop)
    return idx


def play_looped(x: np.ndarray, loop: Loop | None, n: int,
                release_at: int | None = None) -> np.ndarray:
    """``n`` samples of ``x`` played through its loop (zeros past its end)."""
    idx = loop_positions(n, loop, release_at)
    out = np.zeros(n, np.float32)
    ok = idx < x.shape[0]
    out[ok] = x[idx[ok]]
    return out


def remove_dc(x: np.ndarray, rate: int) -> np.ndarray:
    """A zero-phase high-pass at :data:`DC_CUTOFF` Hz (no click at either end)."""
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(x, np.float64)
    if x.shape[0] < 64:
        return (x - x.mean()).astype(np.float32)
    sos = butter(2, DC_CUTOFF, "highpass", fs=rate, output="sos")
    return sosfiltfilt(sos, x - x.mean()).astype(np.float32)


def _zero_mean(x: np.ndarray) -> np.ndarray:
    """The mean taken out under a Hann window (so neither end moves: no click)."""
    if x.shape[0] < 3:
        return x - x.mean()
    w = np.hanning(x.shape[0])
    return (x - x.mean() * w * (x.shape[0] / w.sum())).astype(np.float32)


def _held_rms(x: np.ndarray, loop: Loop | None, rate: int) -> float:
    """The RMS over the loop, or (no loop) over the frames within 20 dB of the loudest."""
    if loop is not None:
        part = x[loop.start: loop.end].astype(np.float64)
        return float(np.sqrt(np.mean(np.square(part)))) if part.size else 0.0
    level, _ = _frame_levels(x, rate)
    if not level.size:
        return 0.0
    loud = level[level >= level.max() * 0.1]
    return float(np.sqrt(np.mean(np.square(loud))))


def finish_notes(notes: Sequence[np.ndarray], rate: int, held: float = ds.SECONDS_HELD,
                 progress: Callable[[float], None] | None = None
                 ) -> tuple[list[np.ndarray], list[Loop | None]]:
    """Decoded notes made playable: DC removed, a seamless sustain loop each (or None: then the
    note's end faded), and all at the same level over their loops (:data:`HELD_LEVEL_DB`,
    lowered together so no peak passes 0.95)."""
    out: list[np.ndarray] = []
    loops: list[Loop | None] = []
    for i, note in enumerate(notes):
        x = remove_dc(note, rate)
        loop = find_loop(x, rate, held)
        if loop is not None:
            x = bake_loop(_steady(x, loop, rate), loop, rate)
        else:  # no click where the note stops
            fade = min(x.shape[0], int(END_FADE * rate))
            x[x.shape[0] - fade:] *= np.cos(0.5 * np.pi * np.arange(fade) / max(fade, 1))
        out.append(x)
        loops.append(loop)
        if progress is not None:
            progress((i + 1) / len(notes))
    levels = [_held_rms(x, loop, rate) for x, loop in zip(out, loops, strict=True)]
    target = 10.0 ** (HELD_LEVEL_DB / 20.0)
    gains = [target / lv if lv > 1e-9 else 1.0 for lv in levels]
    peaks = [float(np.abs(x).max()) * g if x.size else 0.0 for x, g in zip(out, gains,
                                                                          strict=True)]
    scale = min(1.0, 0.95 / max(max(peaks, default=0.0), 1e-9))
    return [_zero_mean(x * np.float32(g * scale)) for x, g in zip(out, gains, strict=True)], loops


def smpl_chunk(key: int, loop: Loop, rate: int) -> bytes:
    """A WAV ``smpl`` chunk: the note's root key and its loop (forward, endless; the end
    inclusive), which samplers and DAWs that load the bare WAV read."""
    head = struct.pack("<9I", 0, 0, int(round(1e9 / rate)), int(key), 0, 0, 0, 1, 0)
    body = head + struct.pack("<6I", 0, 0, loop.start, loop.end - 1, 0, 0)
    return b"smpl" + struct.pack("<I", len(body)) + body


def wav_loop(path: str | Path) -> Loop | None:
    """The first loop of a WAV's ``smpl`` chunk (None: not a WAV, or no loop)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            for _ in range(64):  # chunks looked at, at most
                top = f.read(8)
                if len(top) < 8:
                    return None
                kind, size = struct.unpack("<4sI", top)
                if kind == b"smpl":
                    body = f.read(min(size, 36 + 24))
                    if len(body) < 60 or struct.unpack_from("<I", body, 28)[0] < 1:
                        return None
                    start, last = struct.unpack_from("<II", body, 36 + 8)
                    return Loop(start, last + 1) if last > start else None
                f.seek(size + (size & 1), 1)
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------- SFZ
def write_sfz(directory: Path, files: Sequence[str], pitches: Sequence[int],
              release: float, loops: Sequence[Loop | None] | None = None) -> Path:
    """``instrument.sfz``: a region per file (``files[i]`` plays ``pitches[i]``), its loop (in
    samples, ``loop_end`` inclusive) when ``loops[i]`` has one."""
    lines = ["// Cadenza morph instrument", "<group>",
             f"ampeg_release={release:g}", "ampeg_attack=0.005", "amp_veltrack=100"]
    loops = list(loops) if loops is not None else [None] * len(files)
    order = np.argsort(pitches)
    for (lo, hi, key), i in zip(key_ranges(pitches), order, strict=True):
        line = f"<region> sample={files[i]} pitch_keycenter={key} lokey={lo} hikey={hi}"
        loop = loops[i]
        if loop is not None:
            line += (f" loop_mode={loop.mode} loop_start={loop.start}"
                     f" loop_end={loop.end - 1}")
        lines.append(line)
    path = directory / SFZ_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


_NOTE_STEPS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ALIASES = {"loopmode": "loop_mode", "loopstart": "loop_start", "loopend": "loop_end"}


def sfz_key(text: str) -> int:
    """An SFZ key: a MIDI number or a note name, ``c4`` = 60 (``c#4``, ``db4``, ``eb3``,
    octaves -1..9). Raises ``ValueError`` otherwise."""
    t = text.strip().lower()
    if re.fullmatch(r"[+-]?\d+", t):
        return int(t)
    m = re.fullmatch(r"([a-g])([#b]?)(-1|\d)", t)
    if not m:
        raise ValueError(f"not a key: {text}")
    return 12 * (int(m[3]) + 1) + _NOTE_STEPS[m[1]] + {"#": 1, "b": -1, "": 0}[m[2]]


def _opcodes(body: str) -> list[tuple[str, str]]:
    """``name=value`` pairs in order; a value runs to the next opcode or the end of its line
    (so ``sample=`` may hold spaces), ``key=K`` stands for lokey, hikey and pitch_keycenter."""
    pairs: list[tuple[str, str]] = []
    for line in body.splitlines():
        found = list(re.finditer(r"(?:^|(?<=\s))([A-Za-z_][\w$]*)=", line))
        for j, m in enumerate(found):
            stop = found[j + 1].start() if j + 1 < len(found) else len(line)
            name, value = m[1].lower(), line[m.end():stop].strip()
            name = _ALIASES.get(name, name)
            if name == "key":
                pairs += [("lokey", value), ("hikey", value), ("pitch_keycenter", value)]
            else:
                pairs.append((name, value))
    return pairs


def parse_sfz(path: str | Path) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The ``<region>`` opcodes of an SFZ file, each with what it inherits merged in, and the
    last ``<global>``/``<master>``/``<group>`` opcodes (merged) for the whole instrument.

    Real-world syntax is read: ``//`` and ``/* */`` comments; headers anywhere on a line;
    ``<control>`` (its ``default_path`` is put before every ``sample``), ``<global>``,
    ``<master>`` and ``<group>`` inherited by the regions after them (a new ``<global>`` clears
    the master and group opcodes, a new ``<master>`` the group's); values up to the next opcode
    (file names with spaces); ``key=`` for ``lokey``, ``hikey`` and ``pitch_keycenter``;
    ``#define $NAME value`` substituted. ``#include`` is not followed (its regions are not
    read); opcodes under ``<curve>``, ``<effect>`` and ``<midi>`` are ignored."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limits.SFZ_MAX_BYTES + 1)
    except OSError as exc:
        raise CadenzaError(f"{path}: cannot read the SFZ file ({exc.strerror or exc})") from exc
    if len(raw) > limits.SFZ_MAX_BYTES:
        raise CadenzaError(f"{path}: more than the {limits.SFZ_MAX_BYTES // 1024} kB an SFZ "
                           f"file may have")
    text = raw.decode("utf-8", errors="replace")
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    defines: dict[str, str] = {}
    kept = []
    for line in text.splitlines():
        m = re.match(r"\s*#define\s+(\$\w+)\s+(.*?)\s*$", line)
        if m:
            defines[m[1]] = m[2]
        elif not re.match(r"\s*#include\b", line):
            kept.append(line)
    text = "\n".join(kept)
    for name in sorted(defines, key=len, reverse=True):
        text = text.replace(name, defines[name])
    control: dict[str, str] = {}
    scopes: dict[str, dict[str, str]] = {"global": {}, "master": {}, "group": {}}
    regions: list[dict[str, str]] = []
    parts = re.split(r"<(\w+)>", text)
    for tag, body in zip(parts[1::2], parts[2::2], strict=True):
        tag = tag.lower()
        opcodes = dict(_opcodes(body))
        if tag == "control":
            control.update(opcodes)
        elif tag in scopes:
            clears = {"global": ("global", "master", "group"), "master": ("master", "group"),
                      "group": ("group",)}[tag]
            for name in clears:
                scopes[name] = {}
            scopes[tag] = opcodes
        elif tag == "region":
            region = {**scopes["global"], **scopes["master"], **scopes["group"], **opcodes}
            if "sample" in region and control.get("default_path"):
                region["sample"] = control["default_path"].replace("\\", "/").rstrip("/") \
                    + "/" + region["sample"]
            regions.append(region)
    return regions, {**scopes["global"], **scopes["master"], **scopes["group"]}


def _region_loop(r: dict[str, str], frames: int, where: str, sample: Path) -> Loop | None:
    """The region's loop: its ``loop_start``/``loop_end`` or else the WAV's own ``smpl`` loop,
    played as ``loop_mode`` says (by default, as the SFZ format has it, ``loop_continuous``
    when the WAV has a loop, else none)."""
    mode = r.get("loop_mode", "").lower()
    if mode and mode not in LOOP_MODES:
        raise CadenzaError(f"{where}: loop_mode must be one of {', '.join(LOOP_MODES)}, not "
                           f"{mode}")
    if mode in ("no_loop", "one_shot"):
        return None
    own = wav_loop(sample)
    if own is not None and own.end > frames:
        own = None
    if not mode:
        if own is None:
            return None
        mode = "loop_continuous"
    if "loop_end" not in r:
        return None if own is None else Loop(own.start, own.end, mode)
    try:
        start, last = int(r.get("loop_start", "0")), int(r["loop_end"])
    except ValueError as exc:
        raise CadenzaError(f"{where}: loop_start and loop_end must be sample numbers") from exc
    if not 0 <= start < last < frames:
        raise CadenzaError(f"{where}: the loop {start}..{last} is not inside its "
                           f"{frames}-sample file")
    return Loop(start, last + 1, mode)


@dataclass
class MorphInstrument:
    """A playable morph: one rendered note per key center (mono float32 at ``sample_rate``),
    with its sustain loop (``loops``, by key center) where the SFZ gives one."""

    samples: dict[int, np.ndarray]
    ranges: list[tuple[int, int, int]]
    sample_rate: int = ds.SAMPLE_RATE
    release: float = 0.3
    attack: float = 0.005
    decay: float = 0.2
    sustain: float = 0.8
    loops: dict[int, Loop] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: str | Path) -> MorphInstrument:
        """Read a folder written by :func:`build_instrument` (or any SFZ of WAV regions:
        :func:`parse_sfz` says which syntax)."""
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
            raise CadenzaError(f"{sfz} has no regions (an #include is not followed)")
        if len(regions) > 128:
            raise CadenzaError(f"{sfz}: {len(regions)} regions, more than the 128 an "
                               f"instrument may have")
        samples: dict[int, np.ndarray] = {}
        loops: dict[int, Loop] = {}
        ranges = []
        rate = None
        for number, r in enumerate(regions, 1):
            try:
                key = sfz_key(r["pitch_keycenter"])
                lo, hi = sfz_key(r.get("lokey", str(key))), sfz_key(r.get("hikey", str(key)))
            except (KeyError, ValueError) as exc:
                raise CadenzaError(f"{sfz}: a region lacks a usable pitch_keycenter (or key=)"
                                   ) from exc
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
            loop = _region_loop(r, audio.frames, f"{sfz}: region {number}", sample)
            if rate is None:
                rate = audio.sample_rate
            if audio.sample_rate != rate:
                if loop is not None:
                    loop = loop.scaled(rate / audio.sample_rate)
                audio = audio.resampled(rate)
            samples[key] = audio.samples[:, 0].copy()
            if loop is not None and loop.end <= samples[key].shape[0]:
                loops[key] = loop
            else:
                loops.pop(key, None)
            ranges.append((lo, hi, key))
        text = group.get("ampeg_release", regions[0].get("ampeg_release", "0.3"))
        try:
            release = limits.number(text, "ampeg_release", 0.0, limits.MAX_RELEASE, unit=" s")
        except CadenzaError as exc:
            raise CadenzaError(f"{sfz}: {exc}") from None
        return cls(samples, sorted(ranges), int(rate or ds.SAMPLE_RATE), release=release,
                   loops=loops)

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
        """Mono float32: ``seconds`` held (through the sample's loop, if it has one) then the
        release, at ``sample_rate`` (default own)."""
        if not 0 <= int(pitch) <= 127:
            raise CadenzaError(f"pitch must be 0..127, not {pitch}")
        if not 0 <= int(velocity) <= 127:
            raise CadenzaError(f"velocity must be 0..127, not {velocity}")
        if not (np.isfinite(seconds) and 0 <= seconds <= 60):
            raise CadenzaError(f"a note lasts 0..60 s, not {seconds}")
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        key = self.key_center(int(pitch))
        held = int(round(seconds * rate))
        n = held + int(round(self.release * rate))
        x = self.samples[key]
        loop = self.loops.get(key)
        if loop is not None:  # the source samples the note reads, looped, then repitched
            per_out = self.sample_rate / rate * 2.0 ** ((int(pitch) - key) / 12.0)
            x = play_looped(x, loop, int(np.ceil(n * per_out)) + 64,
                            release_at=int(round(held * per_out)))
        src = shift_pitch(x, int(pitch) - key, self.sample_rate, rate)
        out = np.zeros(n, np.float32)
        m = min(n, src.shape[0])
        out[:m] = src[:m]
        gain = (int(velocity) / 127.0) ** 2
        return (out * self.envelope(n, held, rate) * np.float32(gain)).astype(np.float32)


def _source_at(morpher: Any, source: Any, pitch: int, cache: dict) -> np.ndarray:
    """A source as the model's input at ``pitch``: a GM instrument rendered there, an audio
    file repitched there from its own pitch and, when that shortened it, held to its full
    length again through a loop of its steady part."""
    if isinstance(source, str) and source.lower().startswith("gm:"):
        return morpher.source_audio(source, pitch=pitch)
    rate = int(getattr(morpher.config, "sample_rate", ds.SAMPLE_RATE))
    key = id(source) if not isinstance(source, (str, Path)) else str(source)
    if key not in cache:
        x = morpher.source_audio(source)
        f0 = estimate_f0(x, rate)
        cache[key] = (x, midi_of(f0) if np.isfinite(f0) else 60.0)
    x, base = cache[key]
    shifted = shift_pitch(x, pitch - base, rate)
    if shifted.shape[0] < x.shape[0]:
        shifted = _hold_again(shifted, rate, x.shape[0], 2.0 ** ((pitch - base) / 12.0))
    return ds.normalize_note(ds.fit_length(shifted, x.shape[0]))


def _hold_again(x: np.ndarray, rate: int, n: int, ratio: float) -> np.ndarray:
    """A note shortened ``ratio`` times by repitching, held to ``n`` samples: its loop played
    until the original held time (:data:`models.nsynth.dataset.SECONDS_HELD`), then faded over
    the original release."""
    loop = find_loop(x, rate, ds.SECONDS_HELD / ratio)
    if loop is None:
        return x
    held = min(n, int(ds.SECONDS_HELD * rate))
    y = play_looped(bake_loop(x, loop, rate), loop, n)
    fade = max(1, min(n - held, int(0.5 * rate)))
    y[held: held + fade] *= np.cos(0.5 * np.pi * np.arange(fade) / fade).astype(np.float32)
    y[held + fade:] = 0.0
    return y


def save_instrument(root: str | Path, pitches: Sequence[int], notes: Sequence[Any],
                    release: float, info: dict[str, Any] | None = None,
                    loops: Sequence[Loop | None] | None = None) -> Path:
    """Write an instrument folder: one WAV per pitch (``notes``: :class:`Audio`; with its loop,
    ``loops``, in a ``smpl`` chunk), the SFZ (with the loops) and ``instrument.json``. The
    folder is built beside ``root`` and replaces it as a whole: a kill, a full disk or an error
    leaves the old instrument exactly as it was, never old and new notes mixed, and an error
    says so in one line."""
    from models.audio_io import audio_bytes, with_wav_chunk

    root = Path(root)
    try:
        with replacing_folder(root) as building:
            files = []
            loops = list(loops) if loops is not None else [None] * len(notes)
            for p, note, loop in zip(pitches, notes, loops, strict=True):
                name = f"morph-p{int(p):03d}.wav"
                data = audio_bytes(note, "WAV", "PCM_16")
                if loop is not None:  # the loop in the WAV too, for those who load it alone
                    data = with_wav_chunk(data, smpl_chunk(int(p), loop, note.sample_rate))
                (building / name).write_bytes(data)  # in the new folder, renamed as a whole
                files.append(name)
            write_sfz(building, files, pitches, release, loops)
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

    ``sample_rate``: the WAVs' rate (None: the model's own). A model that
    :func:`renders_at_any_rate` decodes at it; another's notes are resampled to it (soxr HQ).
    ``progress(fraction)`` rises from 0 to 1 while the sources are prepared, the notes decoded
    (most of the bar), finished and written.
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
    if sample_rate is not None:
        limits.sample_rate(sample_rate)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise CadenzaError(f"{root}: is a file, not a folder")
    if not root.parent.is_dir():
        raise CadenzaError(f"{root}: the folder {root.parent} does not exist")

    def report(fraction: float) -> None:
        if progress is not None:
            progress(fraction)

    # Preparing the sources takes a tenth of the bar, decoding most of it, finishing and
    # writing the notes the last tenth.
    report(0.0)
    cache: dict = {}
    audio = []
    for i, p in enumerate(pitches):
        audio += [_source_at(morpher, s, p, cache) for s in sources]
        report(0.08 * (i + 1) / len(pitches))
    emb = morpher.encode_batch(audio).reshape(len(pitches), len(sources), -1,
                                              morpher.config.latent_dim)
    mixed = np.stack([mix_xy(list(e), *xy) if xy is not None else mix(list(e), amount)
                      for e in emb])
    # each key centre plays at the pitch, and with the loudness, its (shifted) sources have there
    weights = mix_weights(len(sources), amount, xy)
    n = len(sources)
    guides = [morpher.guide(audio[i * n:(i + 1) * n], weights) for i in range(len(pitches))]
    report(0.1)
    # The whole note is decoded, though only its held part is kept (the loop lies inside it):
    # cut to that, the WaveNet's last chunk would be shorter than the others and be compiled
    # again, which costs more than the release saves (in a new process, as the CLI is).
    rate = int(sample_rate or morpher.config.sample_rate)
    extra = {"sample_rate": rate} if renders_at_any_rate(morpher) else {}
    outs = morpher.decode(mixed, progress=lambda f: report(0.1 + 0.8 * f), cancel=cancel,
                          temperature=temperature, seed=seed, f0=[g[0] for g in guides],
                          envelope=[g[1] for g in guides], **extra)
    if not all(np.isfinite(a.samples).all() for a in outs):
        raise CadenzaError("the morph came out NaN: the model is broken (nothing was written)")
    decoded = [a if a.sample_rate == rate else a.resampled(rate) for a in outs]
    notes, loops = finish_notes([a.samples[:, 0] for a in decoded], rate,
                                progress=lambda f: report(0.9 + 0.07 * f))
    save_instrument(root, pitches, [Audio(x, rate) for x in notes], release, {
        "sources": [str(s) if isinstance(s, (str, Path)) else "audio" for s in sources],
        "amount": None if xy is not None else amount, "xy": list(xy) if xy else None,
        "sample_rate": rate, "rendered_at": rate if extra else int(morpher.config.sample_rate),
        "model": getattr(morpher, "name", ""),
    }, loops)
    report(1.0)
    return MorphInstrument.load(root)
