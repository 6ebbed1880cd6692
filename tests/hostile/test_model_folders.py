"""Model folders are untrusted input: a broken folder in the user's models folder is listed as
broken with its reason (``cadenza models``, ``--json``, the app's listing), skipped by the
defaults, and refused in one line when asked for, before anything is built from it. NaN
weights are refused when the model loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.registry import SHIPPED_DIR, ModelRegistry
from tests.hostile.conftest import assert_refused

GOOD = json.loads((SHIPPED_DIR / "performance-small" / "config.json").read_text())


def _config(**fields: object) -> str:
    return json.dumps({**GOOD, "config": {**GOOD["config"], **fields}})


def _nested(depth: int) -> str:
    return '{"family": "performance", "config": {"extra": ' + "[" * depth + "]" * depth + "}}"


BROKEN: dict[str, tuple[str | bytes, str]] = {
    "config a list": ("[1, 2, 3]", "not a JSON object"),
    "config a string": ('"performance"', "not a JSON object"),
    "inner config a list": (json.dumps({**GOOD, "config": [256, 256]}), "'config' must be"),
    "not UTF-8": (b'{"family": "performance", "config": {"name": "\xff\xfe"}}', "unreadable"),
    "not JSON": ("{family: performance", "unreadable"),
    "nested 100,000 deep": (_nested(100_000), "nested"),
    "nested 50 deep": (_nested(50), "nested"),
    "two megabytes": (json.dumps({**GOOD, "pad": "x" * 2_000_000}), "bytes"),
    "layers of a billion": (_config(layers=[10**9]), "layers"),
    "negative layer": (_config(layers=[-5, 256]), "layers"),
    "a thousand layers": (_config(layers=[8] * 1000), "layers"),
    "layers NaN": (_config(layers=[float("nan")]), "layers"),
    "huge but in range": (_config(layers=[4096] * 16), "million parameters"),
    "name of a megabyte": (_config(name="n" * 1_000_000), "name"),
    "num_classes -1": (_config(num_classes=-1), "num_classes"),
    "family a number": (json.dumps({**GOOD, "family": 7}), "'family' must be a string"),
    "nsynth dilation": (json.dumps({"family": "nsynth", "config": {"dec_base": 10**6}}),
                        "dec_base"),
    "music_vae z": (json.dumps({"family": "music_vae", "config": {"z_size": 10**8}}),
                    "z_size"),
}


@pytest.fixture()
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user-models"
    folder.mkdir()
    monkeypatch.setenv("CADENZA_MODELS_DIR", str(folder))
    return folder


def _broken(models_dir: Path, name: str) -> Path:
    text, _ = BROKEN[name]
    folder = models_dir / "broken"
    folder.mkdir()
    data = text if isinstance(text, bytes) else text.encode()
    (folder / "config.json").write_bytes(data)
    (folder / "model.weights.h5").write_bytes(b"")
    return folder


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_folder_is_listed_with_its_reason(cli, models_dir: Path, name: str) -> None:
    _broken(models_dir, name)
    listed = cli(["models", "--json"])
    assert listed.code == 0 and "Traceback" not in listed.err, listed.err
    rows = {row["name"]: row for row in json.loads(listed.out)}
    assert BROKEN[name][1].lower() in rows["broken"]["broken"].lower(), rows["broken"]
    assert "performance-small" in rows and "broken" not in rows["performance-small"]
    text = cli(["models"])
    assert text.code == 0 and "broken" in text.out and "performance-small" in text.out
    assert listed.cpu < 1 and text.cpu < 1 and listed.seconds < 10


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_folder_is_refused_in_one_line(cli, models_dir: Path, primer: Path,
                                                tmp_path: Path, name: str) -> None:
    folder = _broken(models_dir, name)
    out = tmp_path / "out.mid"
    assert_refused(cli(["continue", primer, "-o", out, "--model", folder]),
                   BROKEN[name][1], within=2.0)
    assert_refused(cli(["continue", primer, "-o", out, "--model", "broken"]), "broken",
                   within=2.0)
    assert not out.exists()


def test_defaults_skip_broken_folders_and_cards_with_bad_bytes(cli, models_dir: Path) -> None:
    for name in ("config a list", "nested 100,000 deep"):
        folder = _broken(models_dir, name)
        folder.rename(models_dir / name.replace(" ", "-"))
    registry = ModelRegistry()
    assert registry.default("performance").name == "performance-transformer"  # the shipped default
    assert len([e for e in registry.list() if e.broken]) == 2
    copy = models_dir / "bad-card"
    shutil.copytree(SHIPPED_DIR / "performance-small", copy)
    payload = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**payload, "name": "bad-card"}))
    (copy / "MODEL_CARD.md").write_bytes(b"# Bad card\n\nLatin-1 \xe9t\xe9 and \xff bytes.\n")
    shown = cli(["models", "bad-card"])
    assert shown.code == 0 and "\ufffd" in shown.out and "Traceback" not in shown.err
    listed = cli(["models"])
    assert listed.code == 0 and "bad-card" in listed.out


def test_the_apps_listing_shows_broken_folders(models_dir: Path) -> None:
    """The worker's listing job (what the app shows) lists a broken folder with its reason
    instead of failing."""
    from app.worker import list_models

    _broken(models_dir, "nested 100,000 deep")

    class Context:
        def registry(self) -> ModelRegistry:
            return ModelRegistry()

    entries = list_models(Context())  # type: ignore[arg-type]
    broken = [e for e in entries if e.broken]
    assert [e.name for e in broken] == ["broken"] and "nested" in broken[0].broken
    assert any(e.name == "performance-small" and not e.broken for e in entries)


def test_nan_weights_are_refused(cli, tmp_path: Path, primer: Path) -> None:
    """A model whose weights hold NaN is refused when it loads, in one line; no file."""
    import h5py

    folder = tmp_path / "nan-model"
    shutil.copytree(SHIPPED_DIR / "performance-small", folder)
    with h5py.File(folder / "model.weights.h5", "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, item: names.append(n) if isinstance(item, h5py.Dataset)
                     and item.dtype.kind == "f" else None)
        data = f[names[0]]
        values = np.array(data)
        values.flat[0] = np.nan
        data[...] = values
    out = tmp_path / "out.mid"
    done = cli(["continue", primer, "-o", out, "--model", folder, "--seconds", "1"])
    assert_refused(done, "NaN", within=5)  # read from the file, before the backend loads
    assert not out.exists()
