"""Audio files to and from float32 arrays: the :class:`Audio` type, reading, writing, resampling.

Reading goes through ``soundfile`` (libsndfile: WAV, FLAC, OGG, MP3, AIFF..., any sample format
and channel count); resampling through ``soxr`` at its highest quality. Writing picks the
container from the extension (:data:`FORMATS`: WAV, FLAC, OGG Vorbis, MP3, AIFF), or from an
explicit ``format``, and replaces the target atomically (:func:`models.files.replacing`);
:func:`audio_bytes` encodes to memory (``-o -`` on the command line). Every problem with a file
becomes a one-line :class:`~models.errors.CadenzaError` that names it.

Tempo for DAWs: an :class:`Audio` may carry an :class:`AcidInfo` (the tempo it was made at, its
root note, whether it is a one-shot). A WAV written from it holds an ``acid`` RIFF chunk, the
"Acidized WAV" that Ableton Live, FL Studio, Reaper and Acid read (24 bytes, little-endian:
``flags`` uint32 (0x01 one-shot, 0x02 root note set, 0x04 stretch, 0x08 disk-based,
0x10 "acidizer"), ``root note`` uint16, two reserved fields (uint16 0x8000, float 0),
``beats`` uint32, ``meter denominator`` uint16, ``meter numerator`` uint16, ``tempo`` float32
BPM), placed before the ``data`` chunk; libsndfile writes none, so it is added to the encoded
bytes. :func:`read_audio` reads it back. Other containers have no such chunk and are written as
before; an ``Audio`` without one gives exactly the bytes it always gave.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile
import soxr

from models.errors import CadenzaError
from models.files import replacing

FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3", ".aiff": "AIFF",
           ".aif": "AIFF"}
"""Extensions Cadenza reads and writes as audio, and the container each one means."""
AUDIO_EXTENSIONS = tuple(FORMATS)
"""Audio file extensions, for open dialogs, drops and the command line (lower case)."""
EXTENSION_OF = {"WAV": ".wav", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3", "AIFF": ".aiff"}
"""The usual extension of each container (what a file dialog or ``--format`` adds)."""
SUBTYPES = {
    "WAV": ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"),
    "FLAC": ("PCM_S8", "PCM_16", "PCM_24"),
    "AIFF": ("PCM_S8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"),
    "OGG": ("VORBIS",),
    "MP3": ("MPEG_LAYER_III",),
}
"""Sample formats :func:`write_audio` accepts per container (8-bit WAV is unsigned). The lossy
containers (OGG Vorbis, MP3) have one codec each: any bit depth asked for means that codec."""
LOSSY = {"OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
"""Sample rates MPEG audio can hold (96 kHz needs another format)."""

ACID_ONE_SHOT, ACID_ROOT_NOTE, ACID_STRETCH, ACID_DISK_BASED, ACID_ACIDIZER = 1, 2, 4, 8, 16
"""The ``acid`` chunk's flag bits."""
_ACID = struct.Struct("<IHHfIHHf")  # flags, root, reserved, reserved, beats, den, num, tempo


@dataclass(frozen=True)
class AcidInfo:
    """What an Acidized WAV tells a DAW: the tempo (BPM) the sound was made at, its root note
    (MIDI pitch, None when it has no pitch), whether it is a one-shot (played as is, not looped
    or stretched to the song) and its metre. ``beats`` None: counted from the length when
    written (``round(seconds * tempo / 60)``, at least 1)."""

    tempo: float
    root_note: int | None = None
    one_shot: bool = False
    beats: int | None = None
    meter: tuple[int, int] = (4, 4)

    def __post_init__(self) -> None:
        tempo = float(self.tempo)
        if not math.isfinite(tempo) or tempo <= 0:
            raise ValueError(f"acid tempo must be a positive number of BPM, not {self.tempo!r}")
        if self.root_note is not None and not 0 <= int(self.root_note) <= 127:
            raise ValueError(f"acid root note must be 0..127, not {self.root_note!r}")
        object.__setattr__(self, "tempo", tempo)

    def chunk(self, seconds: float) -> bytes:
        """The whole ``acid`` chunk (id, size, 24 bytes) for a sound ``seconds`` long."""
        beats = self.beats if self.beats is not None else \
            max(1, round(seconds * self.tempo / 60.0))
        flags = (ACID_ONE_SHOT if self.one_shot else ACID_STRETCH) | \
            (ACID_ROOT_NOTE if self.root_note is not None else 0)
        root = 60 if self.root_note is None else int(self.root_note)
        num, den = self.meter
        body = _ACID.pack(flags, root, 0x8000, 0.0, int(beats), int(den), int(num),
                          self.tempo)
        return b"acid" + struct.pack("<I", len(body)) + body

    @classmethod
    def parse(cls, body: bytes) -> AcidInfo | None:
        """The chunk's body read back; None when it is too short or its tempo is not a
        positive number (a DAW would ignore it too)."""
        if len(body) < _ACID.size:
            return None
        flags, root, _, _, beats, den, num, tempo = _ACID.unpack(body[:_ACID.size])
        if not (math.isfinite(tempo) and tempo > 0):
            return None
        return cls(tempo=float(tempo),
                   root_note=int(root) if flags & ACID_ROOT_NOTE and root <= 127 else None,
                   one_shot=bool(flags & ACID_ONE_SHOT), beats=int(beats),
                   meter=(int(num), int(den)))


@dataclass
class Audio:
    """Sampled sound: ``samples`` is float32 of shape (frames, channels), nominally in [-1, 1].
    ``acid``: the tempo and root note a WAV of it tells a DAW (None: none); kept by the
    methods below, which change neither."""

    samples: np.ndarray
    sample_rate: int
    acid: AcidInfo | None = None

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[:, None]
        if samples.ndim != 2:
            raise ValueError(f"audio samples must be (frames, channels), not {samples.shape}")
        self.samples = samples
        if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
            raise ValueError(f"sample rate must be a positive integer, not {self.sample_rate!r}")
        self.sample_rate = int(self.sample_rate)

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate

    def mono(self) -> Audio:
        """The channels averaged into one (a copy even when already mono)."""
        return Audio(self.samples.mean(axis=1, keepdims=True, dtype=np.float64), self.sample_rate,
                     self.acid)

    def resampled(self, sample_rate: int) -> Audio:
        """The same sound at ``sample_rate`` (soxr, very high quality)."""
        sample_rate = int(sample_rate)
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, not {sample_rate}")
        if sample_rate == self.sample_rate or self.frames == 0:
            frames = round(self.frames * sample_rate / self.sample_rate)
            return Audio(self.samples[:frames].copy(), sample_rate, self.acid)
        out = soxr.resample(self.samples, self.sample_rate, sample_rate, quality="VHQ")
        return Audio(np.asarray(out, dtype=np.float32).reshape(-1, self.channels), sample_rate,
                     self.acid)

    def with_acid(self, acid: AcidInfo | None) -> Audio:
        """The same samples (not copied) carrying ``acid``."""
        return replace(self, acid=acid)

    def normalized(self, peak: float = 0.99) -> Audio:
        """Scaled so that the loudest sample reaches ``peak`` (silence stays silent)."""
        current = float(np.max(np.abs(self.samples))) if self.samples.size else 0.0
        gain = peak / current if current > 0 else 1.0
        return Audio(self.samples * np.float32(gain), self.sample_rate, self.acid)

    def loudness_normalized(self, target_rms_db: float = -20.0, max_peak: float = 1.0) -> Audio:
        """Scaled to an RMS level of ``target_rms_db`` dBFS, the gain capped so no peak passes
        ``max_peak`` (quiet and loud recordings come out alike; silence stays silent)."""
        if not self.samples.size:
            return Audio(self.samples.copy(), self.sample_rate, self.acid)
        rms = float(np.sqrt(np.mean(np.square(self.samples, dtype=np.float64))))
        peak = float(np.max(np.abs(self.samples)))
        if rms == 0.0:
            return Audio(self.samples.copy(), self.sample_rate, self.acid)
        gain = min(10.0 ** (target_rms_db / 20.0) / rms, max_peak / peak)
        return Audio(self.samples * np.float32(gain), self.sample_rate, self.acid)


def read_audio(path: str | Path, seconds: float | None = None) -> Audio:
    """Read an audio file (any format libsndfile knows) as float32 samples in [-1, 1].

    With ``seconds``, only the file's first ``seconds`` are read (and checked): a long file
    costs no more time or memory than its head."""
    path = Path(path)
    label = path.name or str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CadenzaError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
    if path.is_dir():
        raise CadenzaError(f"{label}: is a folder, not an audio file")
    if size == 0:
        raise CadenzaError(f"{label}: empty file, not audio")
    acid = _check_wav_length(path, label)
    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError, OSError) as exc:
        raise CadenzaError(
            f"{label}: not an audio file, or a format that cannot be read ({_reason(exc)})"
        ) from exc
    if info.samplerate <= 0:
        raise CadenzaError(f"{label}: corrupt audio file (sample rate {info.samplerate})")
    if info.channels <= 0:
        raise CadenzaError(f"{label}: corrupt audio file ({info.channels} channels)")
    try:
        frames = -1 if seconds is None else max(1, math.ceil(seconds * info.samplerate))
        samples, sample_rate = soundfile.read(str(path), frames=frames, dtype="float32",
                                              always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, OSError, ValueError) as exc:
        raise CadenzaError(f"{label}: truncated or corrupt audio file ({_reason(exc)})") from exc
    if samples.shape[0] == 0:
        raise CadenzaError(f"{label}: the file holds no audio (zero frames)")
    if not np.isfinite(samples).all():
        raise CadenzaError(f"{label}: corrupt audio file (NaN or infinite samples)")
    return Audio(samples, sample_rate, acid)


def audio_format(path: str | Path, format: str | None = None) -> str:
    """The container for ``path`` (from its extension) or the explicit ``format`` ("wav",
    "FLAC", ".mp3", ...); a one-line :class:`CadenzaError` for anything else."""
    if format is not None:
        name = format.strip().upper().lstrip(".")
        name = {"AIF": "AIFF", "OGA": "OGG", "VORBIS": "OGG"}.get(name, name)
        if name not in SUBTYPES:
            raise CadenzaError(f"unknown audio format '{format}' (use "
                               f"{', '.join(n.lower() for n in SUBTYPES)})")
        return name
    path = Path(path)
    container = FORMATS.get(path.suffix.lower())
    if container is None:
        label = path.name or str(path)
        raise CadenzaError(f"{label}: cannot write audio as '{path.suffix}' "
                           f"(use {', '.join(FORMATS)})")
    return container


def _prepared(label: str, audio: Audio, container: str, subtype: str) -> tuple[np.ndarray, str]:
    subtype = subtype.upper()
    if container in LOSSY:
        subtype = LOSSY[container]  # bit depth does not apply to a lossy codec
        if container == "MP3" and audio.sample_rate not in MP3_RATES:
            raise CadenzaError(
                f"{label}: MP3 cannot hold {audio.sample_rate} Hz (8000 to 48000 Hz only; use "
                "WAV, FLAC, AIFF or OGG for higher rates)")
        if container == "MP3" and audio.channels > 2:
            raise CadenzaError(f"{label}: MP3 holds one or two channels, not {audio.channels}")
    if subtype not in SUBTYPES[container]:
        raise CadenzaError(
            f"{label}: {container} cannot hold {subtype} samples "
            f"(use {', '.join(SUBTYPES[container])})"
        )
    samples = np.asarray(audio.samples, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise CadenzaError(f"{label}: cannot write NaN or infinite samples")
    if subtype != "FLOAT":
        samples = np.clip(samples, -1.0, 1.0)
    return samples, subtype


def write_audio(path: str | Path, audio: Audio, subtype: str = "PCM_16",
                format: str | None = None) -> None:
    """Write ``audio`` to ``path``, replacing it atomically; the container comes from the
    extension (.wav, .flac, .ogg, .mp3, .aiff/.aif) unless ``format`` names it.

    ``subtype``: PCM_16, PCM_24 or FLOAT (also PCM_U8/PCM_32 for WAV, PCM_S8 for FLAC and AIFF);
    ignored by OGG (Vorbis) and MP3. Integer formats clip the samples to [-1, 1].
    """
    path = Path(path)
    label = path.name or str(path)
    container = audio_format(path, format)
    samples, subtype = _prepared(label, audio, container, subtype)
    with replacing(path) as temporary:  # a hidden name: the container is passed explicitly
        try:
            soundfile.write(str(temporary), samples, audio.sample_rate, subtype=subtype,
                            format=container)
        except (soundfile.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
            raise CadenzaError(f"{label}: cannot write the audio file ({_reason(exc)})") from exc
        if container == "WAV" and audio.acid is not None:
            try:
                data = temporary.read_bytes()
                temporary.write_bytes(_with_chunk(data, audio.acid.chunk(audio.duration)))
            except OSError as exc:
                raise CadenzaError(f"{label}: cannot write the audio file "
                                   f"({exc.strerror or exc})") from exc


def audio_bytes(audio: Audio, format: str = "WAV", subtype: str = "PCM_16") -> bytes:
    """``audio`` encoded as a whole file in memory (for a pipe: ``-o -``)."""
    container = audio_format("", format)
    samples, subtype = _prepared(f"{container} stream", audio, container, subtype)
    buffer = io.BytesIO()
    try:
        soundfile.write(buffer, samples, audio.sample_rate, subtype=subtype, format=container)
    except (soundfile.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        raise CadenzaError(f"cannot encode {container} audio ({_reason(exc)})") from exc
    if container == "WAV" and audio.acid is not None:
        return _with_chunk(buffer.getvalue(), audio.acid.chunk(audio.duration))
    return buffer.getvalue()


def with_wav_chunk(wav: bytes, chunk: bytes) -> bytes:
    """A WAV file's bytes with one more RIFF ``chunk`` (id, size, even-length body) before its
    audio (for a chunk libsndfile does not write, such as a sampler's ``smpl`` loop)."""
    return _with_chunk(wav, chunk)


def _with_chunk(wav: bytes, chunk: bytes) -> bytes:
    """A RIFF WAVE file's bytes with ``chunk`` (id, size, even-length body) added before its
    ``data`` chunk and the RIFF size grown to match; anything else (RF64 for files past 4 GiB,
    a file with no data chunk) comes back unchanged."""
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        return wav
    pos = 12
    while pos + 8 <= len(wav):
        kind, size = struct.unpack_from("<4sI", wav, pos)
        if kind == b"data":
            riff = struct.unpack_from("<I", wav, 4)[0] + len(chunk)
            if riff > 0xFFFFFFFF:
                return wav
            return wav[:4] + struct.pack("<I", riff) + wav[8:pos] + chunk + wav[pos:]
        pos += 8 + size + (size & 1)
    return wav


def load_mono(path: str | Path, sample_rate: int, seconds: float | None = None) -> np.ndarray:
    """A file as a mono float32 vector at ``sample_rate``: the models' input.

    With ``seconds``, the result is exactly ``round(seconds * sample_rate)`` samples long,
    cut or padded with silence at the end.
    """
    audio = read_audio(path).mono().resampled(sample_rate)
    out = audio.samples[:, 0]
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0:
            raise CadenzaError(f"cannot load {seconds!r} seconds of audio")
        length = round(seconds * sample_rate)
        out = out[:length]
        if out.shape[0] < length:
            out = np.pad(out, (0, length - out.shape[0]))
    return np.ascontiguousarray(out, dtype=np.float32)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    prefix = "Error opening "
    if text.startswith(prefix) and ": " in text:  # soundfile repeats the full path: drop it
        text = text.split(": ", 1)[1]
    return text or type(exc).__name__


def _check_wav_length(path: Path, label: str) -> AcidInfo | None:
    """Catch what libsndfile lets through or words badly: a cut-off data chunk, a zero rate;
    the ``acid`` chunk's tempo and root note when the WAV has one (before or after its data)."""
    acid: AcidInfo | None = None
    try:
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos, end = 12, path.stat().st_size
            after_data = 0  # chunks seen past the audio: only an acid chunk is looked for there
            while pos + 8 <= end and after_data <= 16:
                f.seek(pos)
                kind, size = struct.unpack("<4sL", f.read(8))
                if kind == b"acid" and acid is None:
                    acid = AcidInfo.parse(f.read(min(size, 64)))
                elif after_data:
                    after_data += 1
                elif kind == b"fmt " and size >= 8:
                    channels, rate = struct.unpack("<HL", f.read(8)[2:8])
                    if rate == 0 or channels == 0:
                        what = "zero sample rate" if rate == 0 else "zero channels"
                        raise CadenzaError(f"{label}: corrupt WAV file ({what})")
                elif kind == b"data":
                    # 0 and 0xFFFFFFFF mark streams written without knowing their length.
                    if size in (0, 0xFFFFFFFF):
                        return acid
                    if pos + 8 + size > end:
                        raise CadenzaError(
                            f"{label}: truncated WAV file ({end - pos - 8} of {size} bytes "
                            "of audio data)"
                        )
                    after_data = 1
                pos += 8 + size + (size & 1)
        return acid
    except OSError as exc:
        raise CadenzaError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
