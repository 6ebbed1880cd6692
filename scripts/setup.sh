#!/usr/bin/env bash
# Set Cadenza up on Debian or Ubuntu, then open the app or run the tests.
#
#   bash scripts/setup.sh          # set up, then open the app
#   bash scripts/setup.sh test     # set up, then run ruff and the test suite
#   bash scripts/setup.sh setup    # set up only
#
# Safe to run again: it installs only what is missing and reuses the virtual environment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode="${1:-app}"
shift || true

APT_PACKAGES=(
  python3 python3-venv python3-dev
  fluidsynth fluid-soundfont-gm libportaudio2 libsndfile1 jackd2
  xvfb xauth fonts-dejavu-core
  libegl1 libgl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1
)

say() { printf '\033[1m[cadenza]\033[0m %s\n' "$*"; }

install_debian_packages() {
  if ! command -v dpkg-query >/dev/null; then
    say "not a Debian/Ubuntu system: install the equivalents of ${APT_PACKAGES[*]} yourself"
    return
  fi
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

make_venv() {
  local py="${PYTHON:-python3}"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    say "Cadenza needs Python 3.11 or newer; $("$py" --version) found (set PYTHON=...)"
    exit 1
  }
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
    say "creating the virtual environment in .venv"
    rm -rf .venv
    "$py" -m venv .venv
  fi
  # The app needs requirements.lock; the tests need requirements-dev.lock (the same pins plus
  # pytest, ruff, note-seq...). The stamp names the lock, so switching modes installs again.
  local lock=requirements.lock
  if [ "$mode" = test ]; then lock=requirements-dev.lock; fi
  local stamp=.venv/.cadenza-lock
  local want
  want="$lock $(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the locked Python packages ($lock)"
    .venv/bin/python -m pip install -q --upgrade pip
    # An environment made before the lean runtime has the CUDA build `tensorflow`; the locks now
    # name `tensorflow-cpu`, which writes the same files: take both out, then install the lock.
    if [ "$(uname)" != Darwin ] && grep -q '^tensorflow-cpu==' "$lock" \
        && .venv/bin/python -m pip show -q tensorflow 2>/dev/null; then
      .venv/bin/python -m pip uninstall -q -y tensorflow tensorflow-cpu 2>/dev/null
    fi
    .venv/bin/python -m pip install -q -r "$lock"
    .venv/bin/python -m pip install -q --no-deps -e .
    echo "$want" > "$stamp"
  fi
}

install_debian_packages
make_venv

case "$mode" in
  app)
    if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
      say "no display found (DISPLAY/WAYLAND_DISPLAY unset): run this from a desktop session"
      exit 1
    fi
    exec .venv/bin/cadenza "$@"
    ;;
  test)
    say "ruff"
    .venv/bin/ruff check .
    say "tests"
    export QT_QPA_PLATFORM=offscreen
    exec xvfb-run -a .venv/bin/python -m pytest "$@"
    ;;
  setup)
    say "ready: .venv/bin/cadenza opens the app; .venv/bin/cadenza --help lists the commands"
    ;;
  *)
    say "usage: bash scripts/setup.sh [app|test|setup]"
    exit 2
    ;;
esac
