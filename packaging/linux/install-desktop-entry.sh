#!/usr/bin/env bash
# Adds Cadenza to the desktop's application menu for the current user, pointing at this checkout's
# virtual environment (run `bash scripts/setup.sh setup` first).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
metainfo="${XDG_DATA_HOME:-$HOME/.local/share}/metainfo"
mkdir -p "$apps" "$icons" "$metainfo"
cp "$root/assets/cadenza.svg" "$icons/cadenza.svg"
cp "$root/packaging/linux/cadenza.metainfo.xml" "$metainfo/cadenza.metainfo.xml"
sed "s|^Exec=cadenza|Exec=$root/.venv/bin/cadenza|" "$root/packaging/linux/cadenza.desktop" \
  > "$apps/cadenza.desktop"
echo "installed $apps/cadenza.desktop"
