"""``cadenza models`` and ``cadenza devices``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the installed models and their model cards")
    p.add_argument("name", nargs="?", help="show the full model card of this model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_models)

    d = sub.add_parser(
        "devices", help="list MIDI inputs/outputs, audio outputs and compute devices"
    )
    d.add_argument(
        "--no-compute", action="store_true", help="skip the compute devices (imports the backend)"
    )
    d.add_argument("--json", action="store_true",
                   help='machine-readable output: {"midi": {...}, "audio": {...}, '
                        '"compute": {...} or null}')
    d.set_defaults(handler=run_devices)


def run_models(args: argparse.Namespace) -> int:
    from models.registry import ModelRegistry, user_models_dir

    registry = ModelRegistry()
    if args.name:
        entry = registry.get(args.name)
        print(entry.card or f"{entry.name}: no model card")
        return 0
    entries = registry.list()
    if args.json:
        rows = [
            {
                "name": e.name,
                "family": e.family,
                "path": str(e.path),
                "shipped": e.shipped,
                "default": e.is_default,
                "weights": e.has_weights,
                **({"broken": e.broken} if e.broken else {}),
                **{k: v for k, v in e.extra.items() if k == "metrics"},
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not entries:
        print(f"No models installed (shipped models or {user_models_dir()}).")
        return 0
    width = max(len(e.name) for e in entries)
    for e in entries:
        where = ("shipped, default" if e.is_default else "shipped") if e.shipped else str(e.path)
        if e.broken:  # listed, with its reason, never loaded
            print(f"{e.name:<{width}}  {'broken':<12} {where}")
            print(f"{'':<{width}}  {e.broken}")
            continue
        state = "" if e.has_weights else "  (no weights)"
        print(f"{e.name:<{width}}  {e.family:<12} {where}{state}")
        print(f"{'':<{width}}  {e.summary}")
    return 0


def devices_json(no_compute: bool = False) -> dict[str, Any]:
    """What ``cadenza devices --json`` prints: the MIDI system (API, inputs, outputs, or why
    there is none), the audio outputs (or why there are none) and the compute devices."""
    from app.devices import Devices
    from models.errors import CadenzaError

    out: dict[str, Any] = {}
    with Devices() as devices:
        midi: dict[str, Any] = {"available": False, "api": None, "reason": "", "inputs": [],
                                "outputs": []}
        try:
            system = devices.midi()
            midi.update(available=bool(system.available),
                        api=(system.api_name or None) if system.available else None,
                        reason="" if system.available else str(system.reason))
            if system.available:
                midi.update(inputs=[str(p) for p in system.list_inputs()],
                            outputs=[str(p) for p in system.list_outputs()])
        except CadenzaError as exc:
            midi.update(available=False, reason=str(exc))
        out["midi"] = midi
        audio: dict[str, Any] = {"available": False, "reason": "", "outputs": []}
        try:
            outputs = devices.audio_outputs()
            audio["outputs"] = [
                {"name": str(o["name"]), "hostapi": str(o.get("hostapi", "")),
                 "default_samplerate": int(o.get("default_samplerate", 0) or 0),
                 "channels": int(o.get("max_output_channels", 0) or 0)}
                for o in outputs
            ]
            audio["available"] = bool(outputs)
            if not outputs:
                audio["reason"] = "no sound card or sound server (JACK, PulseAudio) was found"
        except CadenzaError as exc:
            audio["reason"] = str(exc)
        out["audio"] = audio
    out["compute"] = None
    if not no_compute:
        from models.compute import backend_name, compute_devices

        out["compute"] = {"backend": backend_name(), "devices": compute_devices()}
    return out


def run_devices(args: argparse.Namespace) -> int:
    from app.devices import Devices

    if args.json:
        print(json.dumps(devices_json(args.no_compute), indent=2))
        return 0
    with Devices() as devices:
        for title, lines in devices.describe():
            print(title)
            for line in lines:
                print(f"  {line}")
    if not args.no_compute:
        from models.compute import backend_name, compute_devices

        print(f"Compute ({backend_name()} backend)")
        for dev in compute_devices():
            print(f"  {dev}")
    return 0
