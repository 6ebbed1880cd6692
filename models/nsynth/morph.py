"""The Morph API: encode sounds to NSynth embeddings, mix them, decode the mix to audio.

    morpher = Morpher.load("models/shipped/nsynth-small")
    a = morpher.encode("flute.wav")            # (125, 16): one vector per 512 samples of 4 s
    b = morpher.encode("gm:church organ")      # a General MIDI instrument, rendered at --pitch
    audio = morpher.decode(mix([a, b], 0.5))   # Audio, 16 kHz mono, 4 s

A decoder with the pitch-lag input (the CPU model) also takes the fundamental to play:
``decode(..., f0=hz)``. :meth:`Morpher.pitches` measures the sources' (YIN), and
:func:`morph_f0` picks the one of the source that weighs most in the mix, so a morph of two
notes at the same pitch stays at that pitch, and one of notes at different pitches plays in tune
with its main source rather than between them.

The decoded sound also follows its sources' loudness (``decode(..., envelope=db)``): each 32 ms
frame is turned down, never up, to the mix of the sources' frame levels in dB. The sampled
WaveNet leaves a noise floor that the sources do not have, loudest where they are quiet (the
silence after a release); this takes it away. :meth:`Morpher.guide` gives both the fundamental and
the envelope of a mix.

Sources are resampled to 16 kHz, mixed to mono, cut or padded to 4 s and loudness-normalised
exactly as the training notes were (:func:`models.nsynth.sources.prepare_audio`, which reads
only the first 4 s of a file).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models import limits
from models.audio_io import AcidInfo, Audio
from models.errors import CadenzaError
from models.nsynth import dataset as ds
from models.nsynth.mulaw import mu_law_encode, scale_codes
from models.nsynth.signal import estimate_f0, follow_envelope, loudness_db
from models.nsynth.sources import prepare_audio

if TYPE_CHECKING:  # the WaveNet's modules import Keras: only when a WaveNet model loads
    from models.nsynth.fastgen import CancelFn, FastGenerator, ProgressFn
    from models.nsynth.model import NSynthAutoencoder, NSynthConfig

Source = str | Path | Audio | np.ndarray


def mix(embeddings: Sequence[np.ndarray], amount: float) -> np.ndarray:
    """Linear interpolation of two embeddings: ``amount`` 0 is the first, 1 the second."""
    if len(embeddings) != 2:
        raise CadenzaError(f"mix takes two embeddings, not {len(embeddings)}")
    a, b = (np.asarray(e, np.float32) for e in embeddings)
    if a.shape != b.shape:
        raise CadenzaError(f"embeddings differ in shape: {a.shape} and {b.shape}")
    t = float(amount)
    if not 0.0 <= t <= 1.0:
        raise CadenzaError(f"the mix amount must be between 0 and 1, not {amount}")
    return ((1.0 - t) * a + t * b).astype(np.float32)


def mix_xy(embeddings: Sequence[np.ndarray], x: float, y: float) -> np.ndarray:
    """Bilinear mix of four corners, NSynth Super's pad: ``[A, B, C, D]`` sit at
    (0, 0), (1, 0), (0, 1), (1, 1): x moves from A to B (and C to D), y from A to C."""
    if len(embeddings) != 4:
        raise CadenzaError(f"mix_xy takes four embeddings, not {len(embeddings)}")
    arrs = [np.asarray(e, np.float32) for e in embeddings]
    if any(a.shape != arrs[0].shape for a in arrs):
        raise CadenzaError("the four embeddings differ in shape")
    x, y = float(x), float(y)
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise CadenzaError(f"x and y must be between 0 and 1, not {x}, {y}")
    a, b, c, d = arrs
    out = (1 - x) * (1 - y) * a + x * (1 - y) * b + (1 - x) * y * c + x * y * d
    return out.astype(np.float32)


def mix_weights(n: int, amount: float = 0.5, xy: tuple[float, float] | None = None) -> list[float]:
    """How much each of 2 sources (``amount``) or 4 (``xy``, corners as in :func:`mix_xy`)
    weighs in the mix."""
    if n == 2:
        return [1.0 - float(amount), float(amount)]
    if n == 4:
        x, y = xy if xy is not None else (0.5, 0.5)
        return [(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y]
    raise CadenzaError(f"a mix takes 2 or 4 sources, not {n}")


def morph_f0(f0s: Sequence[float], weights: Sequence[float]) -> float:
    """The fundamental of a morph: that of the pitched source with the greatest weight (the
    earlier one on a tie); NaN when no source has a pitch."""
    best, best_w = float("nan"), -1.0
    for f, w in zip(f0s, weights, strict=True):
        if np.isfinite(f) and f > 0 and w > best_w + 1e-9:
            best, best_w = float(f), float(w)
    return best


def root_note(f0: float) -> int | None:
    """The MIDI pitch nearest a fundamental in Hz (A4 = 440 Hz is 69); None when unpitched."""
    if not (np.isfinite(f0) and f0 > 0):
        return None
    pitch = int(round(69 + 12 * math.log2(float(f0) / 440.0)))
    return pitch if 0 <= pitch <= 127 else None


def morph_acid(f0: float, tempo: float) -> AcidInfo:
    """What a WAV of a morph made at a session ``tempo`` (BPM) tells a DAW: that tempo, a
    one-shot (a single note, played as is rather than looped or stretched to the song), and
    the note it plays (:func:`root_note` of the fundamental it follows; none when unpitched),
    so a sampler maps it to its own key."""
    return AcidInfo(tempo=float(tempo), root_note=root_note(f0), one_shot=True)


class MorphModel:
    """What every Morph model offers (the registry's façade of a Morph family: ``name``,
    ``family``, ``path``, ``config``, ``close()``): its sources (:meth:`source_audio`, General
    MIDI notes rendered on demand), their pitches, ``encode``; a family adds ``encode_batch``,
    ``guide``, ``decode`` and ``reconstruct`` (:class:`Morpher`, the WaveNet;
    :class:`models.ddsp.morph.DDSPMorpher`), which the CLI, jobs, instruments and evaluation
    call alike."""

    family = ""

    def __init__(self, config: Any, name: str, path: str | Path | None = None) -> None:
        self.config = config
        self.name = name
        self.path = None if path is None else Path(path)
        self._renderer: Any = None

    @classmethod
    def _read_folder(cls, directory: str | Path, config_type: type) -> tuple[Any, str]:
        """``(config, name)`` of the model folder ``directory``, which must hold a model of
        ``cls.family``: the architecture as ``config_type``, and the name it was saved under
        (else the folder's)."""
        from models.checkpoint import config_from_dict, read_model_dir

        payload = read_model_dir(directory)
        if payload["family"] != cls.family:
            raise CadenzaError(f"{directory} is a '{payload['family']}' model, not {cls.family}")
        return (config_from_dict(config_type, payload["config"]),
                str(payload.get("name") or Path(directory).name))

    # ------------------------------------------------------------------ sources
    def source_audio(self, source: Source, pitch: int = 60, velocity: int = 100) -> np.ndarray:
        """A source as model input; ``gm:NAME|NUMBER`` renders that GM instrument at ``pitch``."""
        if isinstance(source, str) and source.lower().startswith("gm:"):
            program = ds.parse_gm(source)
            if not 0 <= int(pitch) <= 127:
                raise CadenzaError(f"pitch must be 0..127, not {pitch}")
            if self._renderer is None:
                self._renderer = ds.gm_renderer()
            x = ds.render_gm_note(self._renderer, program, pitch, velocity)
            if not ds.rms_db(x) > ds.SILENCE_RMS_DB:
                raise CadenzaError(f"{source} is silent at pitch {pitch} in this soundfont")
            return ds.normalize_note(x)
        if isinstance(source, str) and not Path(source).exists():
            raise CadenzaError(f"no such file: {source} (General MIDI sources look like gm:flute)")
        return prepare_audio(source, self.config.sample_rate, self.config.note_samples)

    def pitches(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """The fundamental (Hz, YIN on the held part) of each prepared sound; NaN if none."""
        return np.array([estimate_f0(a, self.config.sample_rate) for a in audios])

    def encode_batch(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared sounds -> embeddings ``(batch, frames, latent)``."""
        raise NotImplementedError

    def encode(self, source: Source, pitch: int = 60) -> np.ndarray:
        """One sound (a path, :class:`Audio`, samples at the model's rate or ``gm:NAME``) ->
        its embedding ``(frames, latent)``."""
        return self.encode_batch([self.source_audio(source, pitch)])[0]

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class Morpher(MorphModel):
    """A trained WaveNet autoencoder with the Morph operations: the registry's façade for the
    "nsynth" family."""

    family = "nsynth"  # models.nsynth.model.FAMILY (not imported here: it imports Keras)

    def __init__(self, model: NSynthAutoencoder, name: str = "nsynth",
                 engine: str = "auto", path: str | Path | None = None) -> None:
        super().__init__(model.config, name, path)
        self.config: NSynthConfig = model.config
        self.model = model
        self.engine = engine
        self._generator: FastGenerator | None = None

    @classmethod
    def load(cls, directory: str | Path, engine: str = "auto", name: str | None = None
             ) -> Morpher:
        from models.checkpoint import load_weights
        from models.nsynth.model import NSynthConfig, build_model

        config, saved_name = cls._read_folder(directory, NSynthConfig)
        model = build_model(config)
        load_weights(model, directory)
        return cls(model, name=name or saved_name, engine=engine, path=directory)

    @property
    def generator(self) -> FastGenerator:
        if self._generator is None:
            from models.nsynth.fastgen import FastGenerator

            self._generator = FastGenerator(self.model, engine=self.engine)
        return self._generator

    # ------------------------------------------------------------------ encode / decode
    def encode_batch(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared audio (each 4 s at 16 kHz) -> embeddings ``(batch, frames, 16)``."""
        x = np.stack([np.asarray(a, np.float32) for a in audios])
        return np.asarray(self.model.encode(scale_codes(mu_law_encode(x))), np.float32)

    def guide(self, audios: Sequence[np.ndarray], weights: Sequence[float]
              ) -> tuple[float, np.ndarray]:
        """What a mix of prepared sounds plays beside its embedding: the fundamental
        (:func:`morph_f0`) and the loudness envelope (the weighted mean of the sources' frame
        levels in dB)."""
        if len(audios) != len(weights):
            raise CadenzaError(f"{len(weights)} weights for {len(audios)} sounds")
        hop = self.config.hop
        levels = np.stack([loudness_db(a, hop) for a in audios])
        w = np.asarray(weights, np.float64)
        envelope = (w[:, None] * levels).sum(0) / max(float(w.sum()), 1e-9)
        return morph_f0(self.pitches(audios), weights), envelope

    def decode(
        self,
        embedding: np.ndarray,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        temperature: float = 1.0,
        seed: int = 0,
        f0: float | Sequence[float] | None = None,
        envelope: np.ndarray | Sequence[np.ndarray] | None = None,
    ) -> Audio | list[Audio]:
        """Embedding ``(frames, 16)`` -> :class:`Audio` (16 kHz mono); a batch
        ``(n, frames, 16)`` is generated together and comes back as a list of ``Audio``.

        ``f0``: the fundamental in Hz to play (one, or one per voice; None or NaN: unpitched),
        for a decoder with the pitch-lag input; other decoders ignore it. ``envelope``: frame
        levels in dB to follow (:func:`follow_envelope`), one for all or one per voice."""
        emb = np.asarray(embedding, np.float32)
        if not np.isfinite(emb).all():
            raise CadenzaError("the embedding is NaN or infinite: the model's weights or its "
                               "input are broken")
        limits.temperature(temperature, "temperature", zero=True)
        limits.seed(seed, "the seed")
        single = emb.ndim == 2
        batch = 1 if single else emb.shape[0]
        f0s = np.full(batch, np.nan) if f0 is None else np.asarray(f0, np.float64).reshape(-1)
        if f0s.shape[0] == 1:
            f0s = np.repeat(f0s, batch)
        if f0s.shape[0] != batch:
            raise CadenzaError(f"{f0s.shape[0]} pitches for {batch} embeddings")
        from models.nsynth.model import lag_period

        periods = np.array([lag_period(f, self.config.sample_rate) for f in f0s])
        out = self.generator.generate(emb[None] if single else emb, temperature=temperature,
                                      seed=seed, progress=progress, cancel=cancel,
                                      periods=periods)
        if envelope is not None:
            envs = [envelope] * batch if np.ndim(envelope) == 1 else list(envelope)
            if len(envs) != batch:
                raise CadenzaError(f"{len(envs)} envelopes for {batch} embeddings")
            out = [follow_envelope(x, e, self.config.hop) for x, e in zip(out, envs, strict=True)]
        audios = [Audio(x, self.config.sample_rate) for x in out]
        return audios[0] if single else audios

    def reconstruct(self, sources: Sequence[Source], **kwargs: Any) -> list[Audio]:
        audios = [self.source_audio(s) for s in sources]
        kwargs.setdefault("f0", self.pitches(audios))
        kwargs.setdefault("envelope", [loudness_db(a, self.config.hop) for a in audios])
        return self.decode(self.encode_batch(audios), **kwargs)  # type: ignore[return-value]
