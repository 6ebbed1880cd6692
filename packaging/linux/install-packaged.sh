#!/usr/bin/env bash
# Adds this unpacked Cadenza to the desktop's application menu for the current user: the menu
# entry, the icon and the AppStream metadata, pointing at this folder's `cadenza`.
# Run it again after moving the folder.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
mkdir -p "$data/applications" "$data/icons/hicolor/scalable/apps" "$data/metainfo"
cp "$here/share/icons/hicolor/scalable/apps/cadenza.svg" "$data/icons/hicolor/scalable/apps/"
cp "$here/share/metainfo/cadenza.metainfo.xml" "$data/metainfo/"
sed "s|^Exec=cadenza|Exec=\"$here/cadenza\"|" "$here/share/applications/cadenza.desktop" \
  > "$data/applications/cadenza.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$data/applications" || true
echo "installed $data/applications/cadenza.desktop (runs $here/cadenza)"
