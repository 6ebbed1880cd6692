"""The examples and the icon reach an installed Cadenza: a real wheel, installed into a prefix."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app.resources import CHECKOUT_ASSETS, examples_dir, icon_path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "assets" / "examples").iterdir()
                  if p.suffix in (".mid", ".wav", ".md"))


def test_a_checkout_reads_its_own_assets(tmp_path):
    assert CHECKOUT_ASSETS == ROOT / "assets"
    # a prefix that has them too comes second
    (tmp_path / "share" / "cadenza" / "examples").mkdir(parents=True)
    assert examples_dir((str(tmp_path),)) == ROOT / "assets" / "examples"
    assert icon_path((str(tmp_path),)) == ROOT / "assets" / "cadenza.svg"
    assert icon_path().is_file()


@pytest.mark.slow
def test_the_wheel_installs_the_examples_and_the_icon(tmp_path):
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("app", "models", "assets", "packaging"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"),
                    str(src)], check=True, timeout=240)
    (wheel,) = (tmp_path / "dist").glob("cadenza-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    assert sorted(n.rsplit("/", 1)[1] for n in data if n.startswith("share/cadenza/examples/")) \
        == EXAMPLES
    assert "share/cadenza/cadenza.svg" in data
    assert "share/icons/hicolor/scalable/apps/cadenza.svg" in data
    # the menu entry, which opens files in Cadenza, and its AppStream metadata
    assert "share/applications/cadenza.desktop" in data
    assert "share/metainfo/cadenza.metainfo.xml" in data

    prefix = tmp_path / "prefix"
    # --ignore-installed: never uninstall the running environment's own (editable) Cadenza
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--ignore-installed",
                    "--prefix", str(prefix),
                    str(wheel)], check=True, timeout=240)
    (site,) = prefix.glob("lib/python*/site-packages")
    probe = ("import sys, app.resources as r; p = (sys.argv[1],); "
             "print(r.__file__); print(r.examples_dir(p)); print(r.icon_path(p))")
    out = subprocess.run([sys.executable, "-c", probe, str(prefix)], cwd=tmp_path,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True, timeout=60).stdout.split("\n")
    assert Path(out[0]).is_relative_to(site)  # the installed copy, not this checkout
    installed = Path(out[1])
    assert installed == prefix / "share" / "cadenza" / "examples"
    assert sorted(p.name for p in installed.iterdir()) == EXAMPLES
    assert Path(out[2]) == prefix / "share" / "cadenza" / "cadenza.svg"
    assert Path(out[2]).read_bytes() == (ROOT / "assets" / "cadenza.svg").read_bytes()


def test_the_app_has_its_icon(qapp):
    from app.main_window import create_app

    app = create_app()
    assert app is qapp
    assert app.desktopFileName() == "cadenza"
    icon = app.windowIcon()
    assert not icon.isNull()
    assert not icon.pixmap(64, 64).toImage().isNull()
