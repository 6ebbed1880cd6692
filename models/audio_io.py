"""Audio files to and from float32 arrays: the :class:`Audio` type, reading, writing, resampling.

Reading goes through ``soundfile`` (libsndfile: WAV, FLAC, OGG, MP3, AIFF..., any sample format
and channel count); resampling through ``soxr`` at its highest quality. Writing picks the
container from the extension (:data:`FORMATS`: WAV, FLAC, OGG Vorbis, MP3, AIFF), or from an
explicit ``format``, and replaces the target atomically (:func:`models.files.replacing`);
:func:`audio_bytes` encodes to memory (``-o -`` on the command line). Every problem with a file
becomes a one-line :class:`~models.errors.CadenzaError` that names it.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
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


@dataclass
class Audio:
    """Sampled sound: ``samples`` is float32 of shape (frames, channels), nominally in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int

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
        return Audio(self.samples.mean(axis=1, keepdims=True, dtype=np.float64), self.sample_rate)

    def resampled(self, sample_rate: int) -> Audio:
        """The same sound at ``sample_rate`` (soxr, very high quality)."""
        sample_rate = int(sample_rate)
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, not {sample_rate}")
        if sample_rate == self.sample_rate or self.frames == 0:
            frames = round(self.frames * sample_rate / self.sample_rate)
            return Audio(self.samples[:frames].copy(), sample_rate)
        out = soxr.resample(self.samples, self.sample_rate, sample_rate, quality="VHQ")
        return Audio(np.asarray(out, dtype=np.float32).reshape(-1, self.channels), sample_rate)

    def normalized(self, peak: float = 0.99) -> Audio:
        """Scaled so that the loudest sample reaches ``peak`` (silence stays silent)."""
        current = float(np.max(np.abs(self.samples))) if self.samples.size else 0.0
        gain = peak / current if current > 0 else 1.0
        return Audio(self.samples * np.float32(gain), self.sample_rate)

    def loudness_normalized(self, target_rms_db: float = -20.0, max_peak: float = 1.0) -> Audio:
        """Scaled to an RMS level of ``target_rms_db`` dBFS, the gain capped so no peak passes
        ``max_peak`` (quiet and loud recordings come out alike; silence stays silent)."""
        if not self.samples.size:
            return Audio(self.samples.copy(), self.sample_rate)
        rms = float(np.sqrt(np.mean(np.square(self.samples, dtype=np.float64))))
        peak = float(np.max(np.abs(self.samples)))
        if rms == 0.0:
            return Audio(self.samples.copy(), self.sample_rate)
        gain = min(10.0 ** (target_rms_db / 20.0) / rms, max_peak / peak)
        return Audio(self.samples * np.float32(gain), self.sample_rate)


def read_audio(path: str | Path) -> Audio:
    """Read an audio file (any format libsndfile knows) as float32 samples in [-1, 1]."""
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
    _check_wav_length(path, label)
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
        samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, OSError, ValueError) as exc:
        raise CadenzaError(f"{label}: truncated or corrupt audio file ({_reason(exc)})") from exc
    if samples.shape[0] == 0:
        raise CadenzaError(f"{label}: the file holds no audio (zero frames)")
    if not np.isfinite(samples).all():
        raise CadenzaError(f"{label}: corrupt audio file (NaN or infinite samples)")
    return Audio(samples, sample_rate)


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


def audio_bytes(audio: Audio, format: str = "WAV", subtype: str = "PCM_16") -> bytes:
    """``audio`` encoded as a whole file in memory (for a pipe: ``-o -``)."""
    container = audio_format("", format)
    samples, subtype = _prepared(f"{container} stream", audio, container, subtype)
    buffer = io.BytesIO()
    try:
        soundfile.write(buffer, samples, audio.sample_rate, subtype=subtype, format=container)
    except (soundfile.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        raise CadenzaError(f"cannot encode {container} audio ({_reason(exc)})") from exc
    return buffer.getvalue()


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


def _check_wav_length(path: Path, label: str) -> None:
    """Catch what libsndfile lets through or words badly: a cut-off data chunk, a zero rate."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return
            pos, end = 12, path.stat().st_size
            while pos + 8 <= end:
                f.seek(pos)
                kind, size = struct.unpack("<4sL", f.read(8))
                if kind == b"fmt " and size >= 8:
                    channels, rate = struct.unpack("<HL", f.read(8)[2:8])
                    if rate == 0 or channels == 0:
                        what = "zero sample rate" if rate == 0 else "zero channels"
                        raise CadenzaError(f"{label}: corrupt WAV file ({what})")
                elif kind == b"data":
                    # 0 and 0xFFFFFFFF mark streams written without knowing their length.
                    if size not in (0, 0xFFFFFFFF) and pos + 8 + size > end:
                        raise CadenzaError(
                            f"{label}: truncated WAV file ({end - pos - 8} of {size} bytes "
                            "of audio data)"
                        )
                    return
                pos += 8 + size + (size & 1)
    except OSError as exc:
        raise CadenzaError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
