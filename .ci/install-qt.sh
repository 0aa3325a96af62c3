#!/usr/bin/env bash
# Install the system libraries PySide6's wheels load (Qt's offscreen and X11/Wayland
# platforms) and a font, so that the window's tests and screenshots run on a fresh Debian
# and `make run` opens the window on a desktop. PySide6 itself comes from PyPI.
#
# Idempotent and non-interactive; needs root and Debian's apt. Exits non-zero, saying why,
# on any failure.
set -euo pipefail

PACKAGES=(
    # Loaded by QtGui/QtWidgets on every platform, offscreen included.
    libegl1 libgl1 libfontconfig1 libfreetype6 libxkbcommon0 libglib2.0-0 libdbus-1-3
    # Text in screenshots (without a font every glyph is a box).
    fonts-dejavu-core
    # The xcb platform plugin, for a real X11 desktop.
    libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
    libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libx11-xcb1
    # Wayland desktops.
    libwayland-cursor0
    # The validators of the Linux desktop entry and AppStream metadata (tests/packaging).
    desktop-file-utils appstream
)

NAME=install-qt
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/apt.sh"

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    say "already installed"
fi
