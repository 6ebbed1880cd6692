"""Offline rendering of a ``NoteSequence`` to audio with FluidSynth and a General MIDI soundfont.

One :class:`Renderer` owns one persistent ``fluidsynth.Synth`` (no audio driver) with the
soundfont loaded once. ``render`` schedules every event of a sequence and asks FluidSynth for the
samples between consecutive event times in one call each, writing float32 straight into the
output buffer (no int16 round trip, no dither, so two renders of the same sequence are
bit-identical). The synth is reset before every render.

No Qt here: the CLI, the worker and the NSynth data set builder all use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import io
import math
import os
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import limits
from models.audio_io import Audio
from models.errors import CadenzaError
from models.sequence import DRUM_CHANNEL, Note, NoteSequence

MAX_SECONDS = limits.RENDER_MAX_SECONDS  # see models.limits
DRUM_BANK = 128
_HINT = "install fluid-soundfont-gm (apt) or pass --soundfont PATH.sf2"
SOUNDFONT_ENV = "CADENZA_SOUNDFONT"

# Event kinds, in the order they are applied when they fall on the same sample.
_PROGRAM, _CC, _BEND, _OFF, _ON = range(5)
_RESET_RATE = True
_FLUID_BLOCK = 64  # FluidSynth's internal block (FLUID_BUFSIZE)


# ---------------------------------------------------------------------------- soundfont lookup
def _is_soundfont(path: Path) -> bool:
    """A RIFF file of form ``sfbk`` (SoundFont 2; SF3 files share the header)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"sfbk"


def _usual_places() -> list[Path]:
    """Where a General MIDI soundfont may be: Debian's and other distributions' folders, the
    user's, and ``<prefix>/share/cadenza/soundfonts`` (the one a packaged build carries)."""
    places = [
        Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
        Path("/usr/share/sounds/sf2/default-GM.sf2"),
    ]
    patterns = [
        "/usr/share/sounds/sf2/*.sf[23]",
        "/usr/share/soundfonts/*.sf[23]",
        "/usr/share/sounds/sf3/*.sf[23]",
        str(Path("~/.local/share/soundfonts").expanduser() / "*.sf[23]"),
    ]
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        patterns.append(str(Path(prefix) / "share" / "cadenza" / "soundfonts" / "*.sf[23]"))
    for pattern in patterns:
        places += [Path(p) for p in sorted(glob.glob(pattern))]
    return list(dict.fromkeys(places))


def find_soundfont(explicit: str | Path | None = None) -> Path:
    """The soundfont to use: ``explicit``, else ``$CADENZA_SOUNDFONT``, else a system one.

    Raises ``CadenzaError`` when the named file is missing or is not a soundfont, or when none of
    the usual places holds one.
    """
    named = explicit if explicit not in (None, "") else os.environ.get(SOUNDFONT_ENV) or None
    if named is not None:
        path = Path(named).expanduser()
        if not path.is_file():
            raise CadenzaError(f"soundfont not found: {path}; {_HINT}")
        if not _is_soundfont(path):
            raise CadenzaError(f"not a SoundFont (.sf2/.sf3) file: {path}; {_HINT}")
        return path
    for path in _usual_places():
        if path.is_file() and _is_soundfont(path):
            return path
    raise CadenzaError(f"no General MIDI soundfont found; {_HINT}")


# ---------------------------------------------------------------------------- FluidSynth glue
def _fluidsynth() -> types.ModuleType:
    try:
        # pyfluidsynth prints where it found the library when $CI is set: keep that out.
        with contextlib.redirect_stdout(io.StringIO()):
            import fluidsynth
    except (ImportError, OSError) as exc:  # the wrapper raises ImportError if the .so is missing
        raise CadenzaError(
            f"FluidSynth is not available ({exc}); install libfluidsynth3 and pyfluidsynth"
        ) from exc
    return fluidsynth


def prepare() -> None:
    """FluidSynth's one-time set-up in this process, done now: a bare synthesizer (no
    soundfont) is made and deleted. The first synthesizer of a process holds up the process's
    other threads, a GUI's included, for some 50-90 ms (measured in the app on a busy 2-core
    machine; the next ones do not): an application calls this early, off its GUI thread, so
    that its first live output does not. Raises ``CadenzaError`` when FluidSynth is missing."""
    _fluidsynth().Synth(samplerate=44100.0).delete()


def _write_float_fn(fluidsynth_module: types.ModuleType) -> ctypes._CFuncPtr:
    fn = fluidsynth_module._fl.fluid_synth_write_float
    fn.restype = ctypes.c_int
    fn.argtypes = [
        ctypes.c_void_p, ctypes.c_int,
        ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
        ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
    ]
    return fn


@dataclass(frozen=True)
class _Track:
    channel: int
    program: int
    is_drum: bool


def _check_sequence(seq: NoteSequence) -> None:
    times: list[float] = []
    for n in seq.notes:
        times += (n.start, n.end)
        if not 0 <= n.pitch <= 127:
            raise CadenzaError(f"note pitch {n.pitch} is outside MIDI's 0..127")
        if not 0 <= n.velocity <= 127:
            raise CadenzaError(f"note velocity {n.velocity} is outside MIDI's 0..127")
    times += [c.time for c in seq.control_changes]
    times += [b.time for b in seq.pitch_bends]
    if not times:
        return
    arr = np.asarray(times, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise CadenzaError("the sequence has NaN or infinite times; cannot render it")
    if arr.min() < 0:
        raise CadenzaError(f"the sequence has a negative time ({arr.min():.3f} s); cannot render")
    if arr.max() > limits.RENDER_MAX_SECONDS:
        raise CadenzaError(
            f"the sequence is {arr.max() / 60:.1f} min long; rendering is limited to "
            f"{limits.RENDER_MAX_SECONDS / 60:.0f} min"
        )


class Renderer:
    """One FluidSynth synthesizer with a General MIDI soundfont, for offline rendering.

    ``gain`` is FluidSynth's master gain (its default 0.2 is quiet; 0.5 leaves headroom for a
    dense piano piece with the pedal down). Output is float32 stereo at ``sample_rate``, clipped
    to [-1, 1]. FluidSynth's reverb is off by default: it costs about 40% more render time (a
    3-minute piano piece goes from about 1.1 s to 1.5 s on a slow core).

    Renders are independent: the synth is silenced, reset and re-aligned to its 64-frame block
    before each one, so a render does not depend on what was rendered before: renders of the
    same sequence are bit-identical. One exception, inside FluidSynth: a voice slot that has
    never been used starts its first 64 frames slightly differently from a reused one (about
    1e-3 of full scale), so the very first render of a fresh Renderer may differ that much, in
    the first 1.5 ms of some notes, from later ones.
    """

    def __init__(
        self,
        soundfont: str | Path | None = None,
        sample_rate: int = 44100,
        gain: float = 0.5,
        reverb: bool = False,
        chorus: bool = False,
        polyphony: int = 256,
    ) -> None:
        if not 8000 <= int(sample_rate) <= 192000:
            raise CadenzaError(f"sample rate {sample_rate} Hz is outside 8000..192000")
        self.soundfont = find_soundfont(soundfont)
        self.sample_rate = int(sample_rate)
        fs = _fluidsynth()
        self._write_float = _write_float_fn(fs)
        self._set_rate = fs._fl.fluid_synth_set_sample_rate
        self._set_rate.argtypes = [ctypes.c_void_p, ctypes.c_float]
        self._set_rate.restype = None
        self._synth = fs.Synth(
            gain=float(gain),
            samplerate=float(self.sample_rate),
            channels=256,
            **{
                "synth.reverb.active": 1 if reverb else 0,
                "synth.chorus.active": 1 if chorus else 0,
                "synth.polyphony": int(polyphony),
                # Load sample data when a preset is first used, not all 148 MB up front.
                "synth.dynamic-sample-loading": 1,
                "synth.cpu-cores": 1,
            },
        )
        sfid = self._synth.sfload(str(self.soundfont))
        if sfid < 0:
            self._synth.delete()
            raise CadenzaError(f"FluidSynth could not load the soundfont {self.soundfont}; {_HINT}")
        self._sfid = sfid
        self._scratch = np.zeros((_FLUID_BLOCK, 2), dtype=np.float32)
        self._phase = 0  # frames into FluidSynth's current 64-frame block
        self._closed = False
        self._reset()  # a used synth after a reset is not quite a fresh one: start from the same

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._synth.delete()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ rendering
    def render(self, seq: NoteSequence, tail: float = 1.0) -> Audio:
        """The whole sequence as stereo float32 audio, plus ``tail`` seconds of release/reverb."""
        if self._closed:
            raise CadenzaError("the renderer is closed")
        if not (math.isfinite(tail) and 0 <= tail <= 60):
            raise CadenzaError(f"tail must be between 0 and 60 seconds, not {tail}")
        _check_sequence(seq)
        end_time = max(
            [seq.total_time, *(b.time for b in seq.pitch_bends)], default=0.0
        )
        total = int(round((end_time + tail) * self.sample_rate))
        return self._render_events(self._events(seq), total)

    def render_note(
        self,
        program: int,
        pitch: int,
        velocity: int,
        seconds_held: float,
        seconds_release: float,
        is_drum: bool = False,
    ) -> Audio:
        """One note held for ``seconds_held`` then released; exactly held + release long."""
        note = Note(pitch=int(pitch), velocity=int(velocity), start=0.0,
                    end=float(seconds_held), program=int(program), is_drum=is_drum)
        if not seconds_held > 0 or not seconds_release >= 0:
            raise CadenzaError("a note needs a positive hold time and a non-negative release")
        seq = NoteSequence(notes=[note])
        _check_sequence(seq)
        total = int(round((seconds_held + seconds_release) * self.sample_rate))
        return self._render_events(self._events(seq), total)

    # ------------------------------------------------------------------ internals
    def _tracks(self, seq: NoteSequence) -> dict[tuple[int, int, bool], _Track]:
        """A channel for every (instrument, program, is_drum); drums share channel 9."""
        keys = sorted({(n.instrument, n.program, n.is_drum) for n in seq.notes})
        tracks: dict[tuple[int, int, bool], _Track] = {}
        free = (c for c in range(256) if c % 16 != DRUM_CHANNEL)
        for key in keys:
            instrument, program, is_drum = key
            if is_drum:
                tracks[key] = _Track(DRUM_CHANNEL, program, True)
            else:
                channel = next(free, None)
                if channel is None:
                    raise CadenzaError("the sequence has more than 240 instrument tracks")
                tracks[key] = _Track(channel, program, False)
        return tracks

    def _events(self, seq: NoteSequence) -> list[tuple[int, int, int, int, int]]:
        """(frame, kind, channel, a, b), sorted; ``kind`` orders same-frame events."""
        sr = self.sample_rate
        tracks = self._tracks(seq)
        events: list[tuple[int, int, int, int, int]] = []
        for track in sorted(set(tracks.values()), key=lambda t: (t.channel, t.program)):
            bank = DRUM_BANK if track.is_drum else 0
            events.append((0, _PROGRAM, track.channel, track.program, bank))
        by_instrument: dict[tuple[int, bool], list[int]] = {}
        for (instrument, _program, is_drum), track in tracks.items():
            by_instrument.setdefault((instrument, is_drum), []).append(track.channel)
        min_len = 64  # one FluidSynth block: a note-off never lands on its own note-on
        for n in seq.notes:
            if n.velocity == 0:
                continue
            channel = tracks[(n.instrument, n.program, n.is_drum)].channel
            on = int(round(n.start * sr))
            off = max(int(round(n.end * sr)), on + min_len)
            events.append((on, _ON, channel, n.pitch, n.velocity))
            events.append((off, _OFF, channel, n.pitch, 0))
        for c in seq.control_changes:
            for channel in by_instrument.get((c.instrument, c.is_drum), ()):
                events.append((int(round(c.time * sr)), _CC, channel, c.number & 127,
                               max(0, min(127, c.value))))
        for b in seq.pitch_bends:
            for channel in by_instrument.get((b.instrument, b.is_drum), ()):
                events.append((int(round(b.time * sr)), _BEND, channel, b.bend, 0))
        events.sort()
        return events

    # ------------------------------------------------------------------ live playing
    def select_program(self, channel: int, program: int) -> None:
        """Choose a General MIDI program for live playing (the drum kit bank on channel 10)."""
        self._select(channel, DRUM_BANK if channel == DRUM_CHANNEL else 0, program)

    def live_message(self, data: Sequence[int]) -> None:
        """Apply one MIDI message (note on/off, control change, program change, pitch bend) to
        the synthesizer at once, for live playing with :meth:`write_block`. Not thread-safe:
        the caller serialises it with ``write_block``. Never call it during :meth:`render`."""
        if self._closed or len(data) < 2:
            return
        status, channel = data[0] & 0xF0, data[0] & 0x0F
        synth = self._synth
        if status == 0x90 and len(data) >= 3 and data[2] > 0:
            synth.noteon(channel, data[1], data[2])
        elif status in (0x80, 0x90) and len(data) >= 3:
            synth.noteoff(channel, data[1])
        elif status == 0xB0 and len(data) >= 3:
            synth.cc(channel, data[1], data[2])
        elif status == 0xC0:
            self.select_program(channel, data[1])
        elif status == 0xE0 and len(data) >= 3:
            synth.pitch_bend(channel, ((data[2] << 7) | data[1]) - 8192)

    def write_block(self, buf: np.ndarray) -> None:
        """The next ``len(buf)`` frames of live playing into ``buf`` (C-contiguous float32,
        frames x 2): no allocation, for a real-time render thread."""
        if self._closed:
            buf.fill(0.0)
            return
        if buf.dtype != np.float32 or buf.ndim != 2 or buf.shape[1] != 2 \
                or not buf.flags.c_contiguous:
            raise CadenzaError("write_block needs a C-contiguous float32 (frames, 2) buffer")
        ptr = buf.ctypes.data
        self._write_float(self._synth.synth, buf.shape[0], ptr, 0, 2, ptr, 1, 2)
        self._phase = (self._phase + buf.shape[0]) % _FLUID_BLOCK

    def _select(self, channel: int, bank: int, program: int) -> None:
        # A preset the soundfont lacks (a rare drum kit, say) falls back to the bank's first one.
        if self._synth.program_select(channel, self._sfid, bank, program) != 0:
            self._synth.program_select(channel, self._sfid, bank, 0)

    def _discard(self, frames: int) -> None:
        if frames > 0:
            self._write_float(self._synth.synth, frames, self._scratch.ctypes.data, 0, 2,
                              self._scratch.ctypes.data, 1, 2)
            self._phase = (self._phase + frames) % _FLUID_BLOCK

    def _reset(self) -> None:
        """Silence, reset and re-align the synth so that the next render starts from scratch.

        FluidSynth computes audio in blocks of 64 frames and applies events at block starts; the
        rest of a half-read block would leak into the next render and shift its event timing.
        So the partial block is read and thrown away, the synth reset, and one more block run
        to apply the reset.
        """
        synth = self._synth
        for channel in range(256):
            synth.all_sounds_off(channel)
        # Stops voices, resets controllers and programs, clears reverb and chorus buffers.
        synth.system_reset()
        if _RESET_RATE:
            self._set_rate(synth.synth, ctypes.c_float(self.sample_rate))
        self._discard((_FLUID_BLOCK - self._phase) % _FLUID_BLOCK)
        self._discard(_FLUID_BLOCK)

    def _render_events(self, events: Iterable[tuple[int, int, int, int, int]], total: int) -> Audio:
        self._reset()
        out = np.zeros((max(total, 0), 2), dtype=np.float32)
        base = out.ctypes.data
        synth = self._synth
        handle = synth.synth
        write = self._write_float
        cur = 0
        for frame, kind, channel, a, b in events:
            frame = min(frame, total)
            if frame > cur:
                ptr = base + cur * 8
                write(handle, frame - cur, ptr, 0, 2, ptr, 1, 2)
                cur = frame
            if kind == _ON:
                synth.noteon(channel, a, b)
            elif kind == _OFF:
                synth.noteoff(channel, a)
            elif kind == _CC:
                synth.cc(channel, a, b)
            elif kind == _BEND:
                synth.pitch_bend(channel, a)
            else:
                self._select(channel, bank=b, program=a)
        if total > cur:
            ptr = base + cur * 8
            write(handle, total - cur, ptr, 0, 2, ptr, 1, 2)
        self._phase = (self._phase + total) % _FLUID_BLOCK
        np.clip(out, -1.0, 1.0, out=out)
        return Audio(samples=out, sample_rate=self.sample_rate)
