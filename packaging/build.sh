#!/usr/bin/env bash
# Build the packaged Cadenza for Linux: one folder with everything, as one download.
#
#   bash packaging/build.sh        # -> dist/cadenza-VERSION-linux-x86_64.tar.gz
#
# It needs the Debian packages of scripts/setup.sh (FluidSynth, PortAudio) and a General MIDI
# soundfont to carry: MuseScore_General_Lite.sf3 (musescore-general-soundfont-small, MIT, 40 MB)
# when installed, else FluidR3_GM.sf2 (fluid-soundfont-gm, MIT, 148 MB), or the file named by
# CADENZA_BUNDLE_SOUNDFONT. It makes a build environment in build/package-venv from
# requirements.lock plus PyInstaller (CADENZA_BUILD_VENV names another one). See
# packaging/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
say() { printf '\033[1m[package]\033[0m %s\n' "$*"; }
start=$(date +%s)

venv="${CADENZA_BUILD_VENV:-build/package-venv}"
stamp="$venv/.cadenza-package-lock"
want="$(cat requirements.lock packaging/requirements-build.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "build environment in $venv (requirements.lock + PyInstaller)"
  [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r requirements.lock -r packaging/requirements-build.txt
  echo "$want" > "$stamp"
fi
say "installing this checkout into it"
"$venv/bin/python" -m pip install -q --no-deps --force-reinstall .
rm -rf build/lib build/bdist.* ./*.egg-info  # setuptools' leftovers in the checkout

soundfont="${CADENZA_BUNDLE_SOUNDFONT:-}"
if [ -z "$soundfont" ]; then
  for f in /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 /usr/share/sounds/sf2/FluidR3_GM.sf2; do
    if [ -f "$f" ]; then soundfont="$f"; break; fi
  done
fi
[ -f "$soundfont" ] || { say "no soundfont to carry: apt-get install musescore-general-soundfont-small"; exit 1; }
export CADENZA_BUNDLE_SOUNDFONT="$soundfont"
say "soundfont: $soundfont"

version="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("cadenza"))')"
arch="$(uname -m)"
name="cadenza-$version-linux-$arch"
work=build/package
rm -rf "$work"
say "PyInstaller"
"$venv/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$work/dist" \
  --workpath "$work/work" packaging/pyinstaller/cadenza.spec

say "assembling $name"
out="$work/$name"
mv "$work/dist/cadenza" "$out"
mkdir -p "$out/share/applications" "$out/share/metainfo" "$out/share/icons/hicolor/scalable/apps" \
  "$out/share/doc/cadenza"
cp packaging/linux/cadenza.desktop "$out/share/applications/"
cp packaging/linux/cadenza.metainfo.xml "$out/share/metainfo/"
cp assets/cadenza.svg "$out/share/icons/hicolor/scalable/apps/cadenza.svg"
cp packaging/linux/install-packaged.sh "$out/install-desktop-entry.sh"
cp packaging/linux/README-packaged.md "$out/README.md"
sf_doc="/usr/share/doc/$(dpkg -S "$soundfont" 2>/dev/null | cut -d: -f1)/copyright"
[ -f "$sf_doc" ] && cp "$sf_doc" "$out/share/doc/cadenza/soundfont-copyright"
for shipped in models/shipped/*/MODEL_CARD.md; do
  cp "$shipped" "$out/share/doc/cadenza/$(basename "$(dirname "$shipped")")-MODEL_CARD.md"
done

mkdir -p dist
say "dist/$name.tar.gz"
tar -C "$work" -cf - "$name" | gzip -6 > "dist/$name.tar.gz.part"
mv "dist/$name.tar.gz.part" "dist/$name.tar.gz"
say "done in $(( $(date +%s) - start )) s: $(du -sh "$out" | cut -f1) unpacked, $(du -sh "dist/$name.tar.gz" | cut -f1) to download"
echo "$root/$out"
