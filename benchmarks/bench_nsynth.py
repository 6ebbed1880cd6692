"""Morph speed on this machine: fast WaveNet generation and one 4-second morph.

    .venv/bin/python benchmarks/bench_nsynth.py [--model models/shipped/nsynth-small] [--gpu]

Prints JSON: samples/s per voice at batch 1 and aggregate at batch 16 (the compiled engine of the
Keras backend: ``xla`` on TensorFlow, ``jax`` on JAX; and the numpy fallback at batch 1), real-time
factors (samples/s over 16 kHz), the wall time of one 4-second morph of two General MIDI sources
(encode both, mix, decode; cold = first call, with the XLA compile; warm = again), the wall time of
a whole ``cadenza morph`` command (a new process: Python and TensorFlow start-up included), the
real-time factor of the morph instrument's sampler voices (16 voices held, 48 kHz, 256-frame blocks
as the live output renders them), the wall time of a 16-pitch morph instrument (64 s of audio
decoded as one batch of 16, WAVs and SFZ written), and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.gpu_option import parse_args_with_gpu  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(ROOT / "models" / "shipped" / "nsynth-small"))
    parser.add_argument("--samples", type=int, default=32000, help="samples per speed run")
    args = parse_args_with_gpu(parser)

    import numpy as np

    from models.nsynth.fastgen import FastGenerator
    from models.nsynth.morph import Morpher, mix, mix_weights
    from models.registry import ModelRegistry

    morpher = ModelRegistry().load(args.model, "nsynth")
    config = morpher.config
    import keras

    engine = FastGenerator(morpher.model).engine  # the backend's compiled loop, if it has one
    result: dict = {"model": args.model, "backend": keras.backend.backend(), "engine": engine,
                    "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0]}
    if args.gpu:
        from models.compute import preferred_device

        result["device"] = preferred_device()

    sr = config.sample_rate

    def speed(engine: str, batch: int, samples: int) -> float:
        gen = FastGenerator(morpher.model, engine=engine)
        frames = -(-samples // config.hop)
        emb = np.random.default_rng(0).normal(size=(batch, frames, 16)).astype("float32")
        periods = np.full(batch, sr / 261.63)  # middle C: the pitch lag is read every sample
        gen.generate(emb, samples=min(samples, 4000), periods=periods)  # compile
        started = time.perf_counter()
        gen.generate(emb, samples=samples, periods=periods)
        return samples / (time.perf_counter() - started)

    if engine != "numpy":
        b1 = speed(engine, 1, args.samples)
        b16 = speed(engine, 16, args.samples)
        result.update({
            f"{engine}_batch1_samples_per_s": round(b1), f"{engine}_batch1_rtf": round(b1 / sr, 3),
            f"{engine}_batch16_samples_per_s_per_voice": round(b16),
            f"{engine}_batch16_aggregate_samples_per_s": round(16 * b16),
            f"{engine}_batch16_aggregate_rtf": round(16 * b16 / sr, 3),
        })
    npy = speed("numpy", 1, 2000)
    result.update({"numpy_batch1_samples_per_s": round(npy),
                   "numpy_batch1_rtf": round(npy / sr, 3)})

    def one_morph(m: Morpher) -> float:
        started = time.perf_counter()
        audios = [m.source_audio("gm:flute", 60), m.source_audio("gm:church organ", 60)]
        emb = m.encode_batch(audios)
        f0, envelope = m.guide(audios, mix_weights(2, 0.5))
        m.decode(mix(list(emb), 0.5), f0=f0, envelope=envelope)
        return time.perf_counter() - started

    # cold: a new Morpher (soundfont load and the XLA compile of its decoder loop included);
    # warm: the same Morpher again, as the app's worker keeps it
    fresh = Morpher(morpher.model)
    result["morph_4s_cold_seconds"] = round(one_morph(fresh), 2)
    result["morph_4s_warm_seconds"] = round(one_morph(fresh), 2)

    import tempfile

    from models.nsynth.instrument import DEFAULT_PITCHES, build_instrument

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        build_instrument(fresh, ["gm:flute", "gm:church organ"], Path(tmp) / "inst",
                         pitches=DEFAULT_PITCHES)
        result["instrument_16_pitches_seconds"] = round(time.perf_counter() - started, 2)

    # the sampler voices that play a morph instrument live
    from models.nsynth.instrument import MorphInstrument, key_ranges
    from models.nsynth.voices import SamplerVoices

    centers = [36 + 4 * i for i in range(16)]
    note = np.asarray(fresh.source_audio("gm:flute", 60), np.float32)
    inst = MorphInstrument({k: note for k in centers}, key_ranges(centers))
    voices = SamplerVoices(inst, 48000, max_voices=32)
    for k in range(16):
        voices.note_on(0, 48 + 2 * k, 100)
    blocks = int(3.0 * 48000 / 256)
    started = time.perf_counter()
    for _ in range(blocks):
        voices.render(256)
    took = time.perf_counter() - started
    result["sampler_16_voices_rtf"] = round(blocks * 256 / 48000 / took, 1)
    fresh.close()

    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "app", "morph", "gm:flute", "gm:church organ",
                        "--model", args.model, "-o", str(Path(tmp) / "m.wav")], cwd=ROOT,
                       check=True, capture_output=True)
        result["cli_morph_4s_wall_seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
