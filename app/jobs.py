"""The worker jobs that call the models: Continue, Interpolate, Morph, rendering and export.

Each public function here takes plain values (sequences, ``Audio``, numbers, model names) and
returns a job ``fn(ctx) -> result`` for :meth:`app.worker.Worker.submit`. A job gets its model
with ``ctx.model(name, family)`` (loaded once through the worker's registry, kept by folder),
calls the model's own operations with ``progress``/``cancel`` callbacks, and returns plain data
(dataclasses of ``NoteSequence``/``Audio``/numpy arrays). No generation loop in here, no Qt,
and no Keras import at module level: the ``models`` code imports it on the worker thread.

``tempo`` (BPM, or None) is the session tempo while the Live panel's sync runs, given by the
workspace as it submits: Continue's takes carry it (their notes at the same seconds),
Interpolate decodes on its grid, a Morph's audio carries it in its WAV's ``acid`` chunk, and a
rendered export of a clip made with it says so too. None changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.worker import Job, JobCancelled, JobContext
from models import limits
from models.errors import CadenzaError, Cancelled
from models.registry import MORPH_FAMILIES
from models.sequence import NoteSequence

if TYPE_CHECKING:
    from models.performance_rnn.generate import Continuation


def _seeds(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------- Continue
@dataclass
class ContinueResult:
    """The primer and its variations (``models.performance_rnn.generate.Continuation``: the
    continuation, its events, log-likelihood, and ``joined``, the primer followed by it, which
    starts at ``boundary``)."""

    primer: NoteSequence
    boundary: float
    variations: list[Continuation] = field(default_factory=list)
    tempo: float | None = None  # the session tempo the takes carry (None: the primer's)


def continue_job(
    model_name: str,
    primer: NoteSequence,
    seconds: float = 10.0,
    temperature: float = 1.0,
    variations: int = 3,
    seed: int | None = None,
    density: float | str | None = "primer",
    key: str | None = "primer",
    top_p: float | None = None,
    beam_size: int = 1,
    branch_factor: int = 1,
    tempo: float | None = None,
) -> Job:
    """A job: ``variations`` continuations of ``primer`` by the PerformanceRNN ``model_name``.

    Calls the model's :meth:`~models.performance_rnn.facade.PerformanceRNN.generate`, as
    ``cadenza continue`` does (the same settings give the same notes); progress arrives as the
    continuations grow and a cancel stops generation within a few dozen events. ``density``
    and ``key`` follow the primer by default ("primer"); None switches them off. ``key`` is a
    name like "C major" (pitch control). ``tempo``: the session tempo (BPM) the takes carry
    (:meth:`~models.performance_rnn.generate.Continuation.at_tempo`: one tempo event, the notes
    at the same seconds); None keeps the primer's.
    """
    if primer is None or not primer.notes:
        raise CadenzaError("the primer has no notes")
    if seconds <= 0:
        raise CadenzaError("the continuation length must be positive")
    if variations < 1:
        raise CadenzaError("at least one variation")
    tempo = limits.tempo(tempo, "the session tempo")
    takes = "1 variation" if variations == 1 else f"{variations} variations"

    def job(ctx: JobContext) -> ContinueResult:
        ctx.progress(0.0, "Loading the model…")
        model = ctx.model(model_name, "performance")
        ctx.raise_if_cancelled()

        def progress(fraction: float) -> None:
            ctx.progress(fraction, f"Generating {takes}: {fraction * seconds:.0f} of "
                                   f"{seconds:g} s")

        try:
            out = model.generate(
                primer, seconds, temperature=temperature, variations=variations, seed=seed,
                top_p=top_p, density=density, pitch_histogram=key, beam_size=beam_size,
                branch_factor=branch_factor, progress=progress,
                cancel=lambda: ctx.cancelled)
        except Cancelled as exc:
            raise JobCancelled() from exc
        if tempo is not None:
            out = [take.at_tempo(tempo) for take in out]
        return ContinueResult(primer, out[0].boundary, out, tempo)

    return job


# ---------------------------------------------------------------------- Interpolate
@dataclass
class InterpolateResult:
    """Decoded steps (or samples), each ``seconds_each`` long (one model window)."""

    sequences: list[NoteSequence]
    seconds_each: float
    latents: np.ndarray | None = None  # the corner z's when four corners were encoded
    tempo: float | None = None  # the session tempo it was decoded at (None: none)


def _window(model: Any, qpm: float) -> float:
    return float(model.window_seconds(qpm))


def _corner_latents(model: Any, items: Sequence[NoteSequence | None],
                    rng: np.random.Generator) -> np.ndarray:
    """Posterior means of the sequences; a fresh z ~ N(0, I) for each ``None`` ("sample")."""
    corners: list[Any] = []
    for item in items:
        if item is None:
            corners.append(rng.standard_normal(model.z_size).astype(np.float32))
        else:
            corners.append(item)
    return np.asarray(model.latents(corners), np.float32)


def interpolate_job(model_name: str, a: NoteSequence | None, b: NoteSequence | None,
                    steps: int = 5, temperature: float = 0.0, seed: int | None = None,
                    tempo: float | None = None) -> Job:
    """A job: ``steps`` sequences from A to B (slerp in MusicVAE's latent space); an endpoint
    that is ``None`` is a random sample. The steps are decoded at ``tempo`` (the session's,
    BPM: each grid step lands on its sixteenth) or, when None, at A's tempo (B's, 120)."""
    if steps < 2:
        raise CadenzaError("an interpolation needs at least 2 steps")
    tempo = limits.tempo(tempo, "the session tempo")

    def job(ctx: JobContext) -> InterpolateResult:
        ctx.progress(None, "Loading the model…")
        model = ctx.model(model_name, "music_vae")
        ctx.raise_if_cancelled()
        ctx.progress(0.3, "Encoding the endpoints…")
        rng = _seeds(seed)
        z = _corner_latents(model, [a, b], rng)
        ctx.raise_if_cancelled()
        ctx.progress(0.6, f"Decoding {steps} steps…")
        zs = model.interpolation_latents(z[0], z[1], steps)
        qpm = tempo or next((s.qpm for s in (a, b) if s is not None), 120.0)
        meter = next((model.meters_of(s) for s in (a, b) if s is not None),
                     (4, 4))  # the steps keep A's metres
        seqs = model.decode(zs, temperature, None if seed is None else seed + 1, qpm,
                            time_signature=meter)
        ctx.progress(1.0, "")
        return InterpolateResult(seqs, _window(model, qpm), z, tempo)

    return job


def sample_job(model_name: str, n: int = 5, temperature: float = 0.5,
               seed: int | None = None, qpm: float = 120.0, tempo: float | None = None) -> Job:
    """A job: ``n`` fresh samples from the prior, at ``tempo`` (the session's) when given,
    else at ``qpm``."""
    tempo = limits.tempo(tempo, "the session tempo")
    qpm = tempo or qpm

    def job(ctx: JobContext) -> InterpolateResult:
        ctx.progress(None, "Loading the model…")
        model = ctx.model(model_name, "music_vae")
        ctx.raise_if_cancelled()
        ctx.progress(0.5, f"Sampling {n}…")
        seqs = model.sample(n, temperature=temperature, seed=seed, qpm=qpm)
        return InterpolateResult(seqs, _window(model, qpm), tempo=tempo)

    return job


def corners_job(model_name: str, corners: Sequence[NoteSequence | None],
                seed: int | None = None) -> Job:
    """A job: the four corner latents ``[4, z]`` (a ``None`` corner is a random sample) and
    the metres the blends are marked with (the first clip's, as ``MusicVAE.meters_of``)."""
    if len(corners) != 4:
        raise CadenzaError("the XY pad needs four corners")

    def job(ctx: JobContext) -> tuple[np.ndarray, Any]:
        ctx.progress(None, "Encoding the corners…")
        model = ctx.model(model_name, "music_vae")
        meters = next((model.meters_of(s) for s in corners if s is not None), (4, 4))
        return _corner_latents(model, list(corners), _seeds(seed)), meters

    return job


def blend_job(model_name: str, latents: np.ndarray, x: float, y: float,
              temperature: float = 0.0, seed: int | None = None, qpm: float = 120.0,
              tempo: float | None = None, meters: Any = (4, 4)) -> Job:
    """A job: the bilinear blend of the four corner latents at (x, y), decoded at ``qpm`` and
    marked with ``meters`` (what ``corners_job`` gave); ``tempo``: the session tempo that
    ``qpm`` is (recorded in the result)."""

    def job(ctx: JobContext) -> InterpolateResult:
        model = ctx.model(model_name, "music_vae")
        ctx.raise_if_cancelled()
        seq = model.blend4(list(np.asarray(latents)), x, y, temperature=temperature, seed=seed,
                           qpm=qpm, time_signature=meters)
        return InterpolateResult([seq], _window(model, qpm), tempo=tempo)

    return job


# ---------------------------------------------------------------------- Morph
@dataclass
class MorphSource:
    """A Morph slot: an ``Audio`` or a General MIDI program rendered at ``pitch``."""

    audio: Any = None  # models.audio_io.Audio
    program: int | None = None
    pitch: int = 60
    label: str = ""

    def spec(self) -> Any:
        return self.audio if self.audio is not None else f"gm:{int(self.program or 0)}"


@dataclass
class MorphResult:
    audio: Any  # Audio, 16 kHz mono (with an acid chunk's tempo and root note at a tempo)
    sources: list[Any]  # the prepared sources (Audio, 16 kHz mono, 4 s), slot order


def mix_embeddings(embeddings: Sequence[np.ndarray], x: float, y: float) -> np.ndarray:
    """Two sources mix along x; three or four are corners of the pad (A, B top, C, D bottom;
    with three, D is C: the bottom edge is all C)."""
    from models.nsynth.morph import mix, mix_xy

    embs = list(embeddings)
    if len(embs) == 2:
        return mix(embs, x)
    if len(embs) == 3:
        embs.append(embs[2])
    if len(embs) != 4:
        raise CadenzaError(f"Morph takes 2 to 4 sounds, not {len(embs)}")
    return mix_xy(embs, x, y)


def morph_guide(morpher: Any, prepared: Sequence[np.ndarray], x: float,
                y: float) -> tuple[float, np.ndarray]:
    """The fundamental and the loudness envelope a morph at (x, y) on the pad follows (the pad
    laid out as in :func:`mix_embeddings`)."""
    from models.nsynth.morph import mix_weights

    sounds = list(prepared)
    if len(sounds) == 2:
        return morpher.guide(sounds, mix_weights(2, x))
    if len(sounds) == 3:
        sounds.append(sounds[2])
    return morpher.guide(sounds, mix_weights(4, xy=(x, y)))


def morph_job(model_name: str, sources: Sequence[MorphSource], x: float, y: float,
              seconds: float = 4.0, temperature: float = 1.0, seed: int = 0,
              tempo: float | None = None) -> Job:
    """A job: encode the sources, mix at (x, y), decode ``seconds`` of audio (progress and
    cancel reach into the WaveNet's sample loop). With ``tempo`` (the session's, BPM) the
    audio carries it as a one-shot whose root note is the pitch it plays
    (:func:`models.nsynth.morph.morph_acid`), for its WAV's ``acid`` chunk."""
    if not 2 <= len(sources) <= 4:
        raise CadenzaError(f"Morph takes 2 to 4 sounds, not {len(sources)}")
    tempo = limits.tempo(tempo, "the session tempo")

    def job(ctx: JobContext) -> MorphResult:
        from models.audio_io import Audio

        ctx.progress(None, "Loading the model…")
        morpher = ctx.model(model_name, MORPH_FAMILIES)
        prepared = []
        for i, s in enumerate(sources):
            ctx.raise_if_cancelled()
            ctx.progress(None, f"Preparing sound {'ABCD'[i]}…")
            prepared.append(morpher.source_audio(s.spec(), pitch=s.pitch))
        ctx.progress(0.0, "Encoding…")
        embs = morpher.encode_batch(prepared)
        mixed = mix_embeddings(list(embs), x, y)
        f0, envelope = morph_guide(morpher, prepared, x, y)
        hop = int(morpher.config.hop) if hasattr(morpher.config, "hop") else 512
        frames = max(1, min(mixed.shape[0], int(round(seconds * morpher.config.sample_rate
                                                         / hop))))
        try:
            audio = morpher.decode(
                mixed[:frames], temperature=temperature, seed=seed, f0=f0, envelope=envelope,
                progress=lambda f: ctx.progress(f, f"Synthesising… {100 * f:.0f}%"),
                cancel=lambda: ctx.cancelled)
        except Cancelled as exc:
            raise JobCancelled() from exc
        rate = morpher.config.sample_rate
        if tempo is not None:
            from models.nsynth.morph import morph_acid

            audio = audio.with_acid(morph_acid(f0, tempo))
        return MorphResult(audio, [Audio(np.asarray(p, np.float32), rate) for p in prepared])

    return job


def instrument_job(model_name: str, sources: Sequence[MorphSource], x: float, y: float,
                   out: str | Path, pitches: Sequence[int] | None = None,
                   sample_rate: int | None = None) -> Job:
    """A job: a morph instrument (one note per key center, WAVs + SFZ) written to ``out`` at
    ``sample_rate`` (None or 0: the model's own); returns the
    :class:`models.nsynth.instrument.MorphInstrument`. Its progress rises while the notes are
    prepared, decoded and finished."""
    if len(sources) not in (2, 3, 4):
        raise CadenzaError(f"Morph takes 2 to 4 sounds, not {len(sources)}")

    def job(ctx: JobContext) -> Any:
        from models.nsynth.instrument import DEFAULT_PITCHES, build_instrument

        ctx.progress(None, "Loading the model…")
        morpher = ctx.model(model_name, MORPH_FAMILIES)
        specs = [s.spec() for s in sources]
        if len(specs) == 3:
            specs.append(specs[2])
        kwargs: dict[str, Any] = {"xy": (x, y)} if len(specs) == 4 else {"amount": x}
        ctx.progress(0.0, "Rendering the instrument…")
        try:
            return build_instrument(
                morpher, specs, out, pitches=tuple(pitches or DEFAULT_PITCHES),
                progress=lambda f: ctx.progress(f, f"Rendering the instrument… {100 * f:.0f}%"),
                cancel=lambda: ctx.cancelled, sample_rate=sample_rate or None, **kwargs)
        except Cancelled as exc:
            raise JobCancelled() from exc

    return job


def live_morph_job(model_name: str, sources: Sequence[MorphSource], x: float, y: float,
                   rates: Sequence[int] = (48000,)) -> Job:
    """A job: the sources prepared and encoded for playing live
    (:class:`models.ddsp.voices.LiveMorph`, a DDSP model only; nothing is rendered), with the
    noise bank made at ``rates`` (the audio output's: 25 MB at 48 kHz) so the voices start at
    once."""
    if not 2 <= len(sources) <= 4:
        raise CadenzaError(f"Morph takes 2 to 4 sounds, not {len(sources)}")

    def job(ctx: JobContext) -> Any:
        from models.ddsp.voices import LiveMorph

        ctx.progress(None, "Loading the model…")
        morpher = ctx.model(model_name, MORPH_FAMILIES)
        if getattr(morpher, "family", None) != "ddsp":
            raise CadenzaError(f"{model_name} is not a DDSP model: make an instrument to play "
                               "it from the keyboard")
        prepared = []
        for i, s in enumerate(sources):
            ctx.raise_if_cancelled()
            ctx.progress(None, f"Preparing sound {'ABCD'[i]}…")
            prepared.append(morpher.source_audio(s.spec(), pitch=s.pitch))
        ctx.progress(None, "Encoding…")
        live = LiveMorph.from_sounds(morpher, prepared, (x, y),
                                     name=" × ".join(s.label or "?" for s in sources))
        for rate in rates:
            ctx.raise_if_cancelled()
            live.warm(rate)
        return live

    return job


# ---------------------------------------------------------------------- audio and files
def prepare_audio_job(item: Any, rate: int = 0, tail: float = 1.0) -> Job:
    """A job: a ``NoteSequence`` rendered (or an ``Audio`` as is), resampled to ``rate``."""

    def job(ctx: JobContext) -> Any:
        data = item
        if isinstance(item, NoteSequence):
            ctx.progress(None, "Rendering…")
            data = ctx.renderer().render(item, tail=tail)
        ctx.raise_if_cancelled()
        if rate and data.sample_rate != rate:
            data = data.resampled(rate)
        return data

    return job


def write_wav_job(item: Any, path: str | Path, rate: int = 0, subtype: str = "PCM_16",
                  tempo: float | None = None) -> Job:
    """A job: a ``NoteSequence`` (rendered) or an ``Audio`` written as an audio file (the
    container from the extension: WAV, FLAC, AIFF, OGG, MP3), resampled to ``rate`` when
    given, as ``subtype`` (PCM_16, PCM_24, FLOAT); returns the path. An ``Audio``'s tempo
    goes into a WAV as it is; a sequence made at a session ``tempo`` is rendered with it
    (:func:`with_tempo`)."""
    path = Path(path)

    def job(ctx: JobContext) -> str:
        from models.audio_io import write_audio

        data = with_tempo(prepare_audio_job(item, rate)(ctx), tempo)
        ctx.progress(None, f"Writing {path.name}…")
        try:
            write_audio(path, data, subtype=subtype)
        except OSError as exc:
            raise CadenzaError(f"could not write {path}: {exc.strerror or exc}") from exc
        return str(path)

    return job


def with_tempo(audio: Any, tempo: float | None) -> Any:
    """``audio`` rendered from a clip made at a session ``tempo``: carrying that tempo (a
    performance to stretch with the song, no root note) unless it carries one already; as it
    is when ``tempo`` is None."""
    if tempo is None or getattr(audio, "acid", None) is not None:
        return audio
    from models.audio_io import AcidInfo

    return audio.with_acid(AcidInfo(tempo=float(tempo)))


def notation_path(path: str | Path) -> Path:
    """``path`` as a MIDI or MusicXML file's name: kept when it ends in .mid, .midi, .musicxml,
    .xml or .mxl, else given ``.mid``."""
    from models.music_files import SEQUENCE_SUFFIXES

    path = Path(path)
    return path if path.suffix.lower() in SEQUENCE_SUFFIXES else path.with_suffix(".mid")


def write_midi(seq: NoteSequence, path: str | Path) -> Path:
    """Write a MIDI file (fast: on the GUI thread is fine); ``CadenzaError`` when it cannot.
    A MusicXML name is written by :func:`write_musicxml_job` in the worker instead."""
    from models.midi_io import write_midi as _write

    path = Path(path)
    if path.suffix.lower() not in (".mid", ".midi"):
        path = path.with_suffix(".mid")
    try:
        _write(seq, path)
    except OSError as exc:
        raise CadenzaError(f"could not write {path}: {exc.strerror or exc}") from exc
    return path


def write_musicxml_job(seq: NoteSequence, path: str | Path) -> Job:
    """A job: ``seq`` written as MusicXML (``.mxl``: compressed) for score editors, quantized
    to sixteenths; returns the path. In the worker: music21 takes up to a second to import, and
    a thousand notes take about a third of a second of processor time to write."""
    path = Path(path)
    seq = seq.copy()

    def job(ctx: JobContext) -> str:
        from models.musicxml import write_musicxml

        ctx.progress(None, f"Writing {path.name}…")
        try:
            write_musicxml(seq, path)
        except OSError as exc:
            raise CadenzaError(f"could not write {path}: {exc.strerror or exc}") from exc
        return str(path)

    return job
