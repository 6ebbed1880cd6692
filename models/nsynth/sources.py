"""Morph sources as model input, without the backend: light enough to check every source
before a model loads.

:func:`prepare_audio` is what :meth:`models.nsynth.morph.Morpher.source_audio` does to a sound
file or samples: the first 4 s only are read (a ten-minute 384 kHz 6-channel file costs what
its head costs), mixed to mono, resampled to 16 kHz, cut or padded to 4 s and
loudness-normalised exactly as the training notes were
(:func:`models.nsynth.dataset.normalize_note`). A source it cannot use is a one-line
:class:`CadenzaError`: no audio, NaN or infinite samples (in the part used), a sample rate out
of range, silence. :func:`check_source` runs it on a file for the command line, which calls it
after the header checks of :func:`models.limits.audio_source` and before loading the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.audio_io import Audio, read_audio
from models.errors import CadenzaError
from models.nsynth import dataset as ds

SOURCE_RATES = (1000, 768000)
"""Sample rates a source may have, in Hz."""


def prepare_audio(source: Audio | np.ndarray | str | Path, sample_rate: int = ds.SAMPLE_RATE,
                  samples: int = ds.NOTE_SAMPLES) -> np.ndarray:
    """A source as the model's input: mono float32 at ``sample_rate``, ``samples`` long,
    loudness-normalised. Of a file, only the part used is read."""
    seconds = samples / sample_rate
    if isinstance(source, (str, Path)):
        audio = read_audio(source, seconds=seconds)
        label = Path(source).name
    elif isinstance(source, Audio):
        audio, label = source, "audio"
    else:
        arr = np.asarray(source, dtype=np.float32)
        if arr.ndim != 1:
            raise CadenzaError(f"raw samples must be mono 1-D at {sample_rate} Hz, not {arr.shape}")
        audio, label = Audio(arr, sample_rate), "audio"
    if audio.frames == 0:
        raise CadenzaError(f"{label}: holds no audio")
    if not SOURCE_RATES[0] <= audio.sample_rate <= SOURCE_RATES[1]:
        raise CadenzaError(f"{label}: sample rate {audio.sample_rate} Hz is out of range "
                           f"({SOURCE_RATES[0]}..{SOURCE_RATES[1]})")
    head = Audio(audio.samples[: int(np.ceil(seconds * audio.sample_rate))], audio.sample_rate)
    if not np.all(np.isfinite(head.samples)):
        raise CadenzaError(f"{label}: has NaN or infinite samples")
    x = head.mono().resampled(sample_rate).samples[:, 0]
    x = ds.fit_length(x, samples)
    if not np.max(np.abs(x)) > 1e-4:
        raise CadenzaError(f"{label}: is silent (in its first {seconds:g} s)")
    return ds.normalize_note(x)


def check_source(path: str | Path) -> None:
    """A sound file that :func:`prepare_audio` can use (its first 4 s read, at 16 kHz), or a
    one-line :class:`CadenzaError` saying why not."""
    prepare_audio(path)
