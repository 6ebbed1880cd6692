"""The ``--gpu`` option of the benchmarks that run a Morph model (not a benchmark itself)."""

from __future__ import annotations

import argparse
import os


def parse_args_with_gpu(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """``parser``'s arguments and ``--gpu``: without it the backend is kept off the GPU (call
    before the backend is imported)."""
    parser.add_argument("--gpu", action="store_true",
                        help="run on the GPU when the backend has one (default: CPU only)")
    args = parser.parse_args()
    if not args.gpu:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return args
