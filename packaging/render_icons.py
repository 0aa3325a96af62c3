"""Render MX Mailer's icon set from its one source, resources/icons/mxmailer.svg.

Run it after editing the SVG and commit what it writes (the bundle build and the window
read the committed files; nothing is rendered at build time):

    .venv/bin/python packaging/render_icons.py

It writes, next to the SVG:

* ``mxmailer-N.png`` for N in 16, 24, 32, 48, 64, 128, 256, 512: the sizes Linux icon
  themes (hicolor), the window icon and AppStream use;
* ``mxmailer.ico`` (Windows: the .exe's icon) holding 16 to 256 px;
* ``mxmailer.icns`` (macOS: the .app's icon) holding 16 to 512 px.

Both containers hold the PNG files byte for byte (PNG entries in ICO since Windows Vista,
in ICNS since OS X 10.7), so they are written here in a few lines of ``struct`` instead of
needing Pillow or Apple's iconutil, and every platform shows the same pixels.

Rendering uses Qt's own SVG renderer (QtSvg, part of PySide6-Essentials), offscreen, so
it needs no display and no other tool.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

from gui.resources_path import ICON_SIZES, icon_file, resources_dir

ICONS = resources_dir() / "icons"
SOURCE = ICONS / "mxmailer.svg"
#: Every PNG size rendered (one list with the window's): hicolor's usual sizes plus 512
#: for AppStream and macOS.
PNG_SIZES = ICON_SIZES
#: Windows shows at most 256 px; ICO cannot say "512" (one byte per side, 0 means 256).
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
#: ICNS element types that hold a PNG, by side in pixels (Apple's icns types).
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}


def png_path(size: int) -> Path:
    """Where the ``size`` px PNG is (the window's own :func:`icon_file`)."""
    return icon_file(size)


def render_png(svg: Path, size: int) -> bytes:
    """The SVG drawn on a transparent ``size`` x ``size`` square, as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF
    from PySide6.QtGui import QImage, QImageWriter, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"render_icons: {svg} is not an SVG Qt can draw")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buffer, QByteArray(b"png"))
    if not writer.write(image):
        raise SystemExit(f"render_icons: the {size} px PNG: {writer.errorString()}")
    buffer.close()
    return bytes(data.data())


def ico(pngs: dict[int, bytes]) -> bytes:
    """An ICO file holding ``pngs`` (side -> PNG bytes), smallest first."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))  # reserved, type 1 = icon, count
    offset = len(header) + 16 * len(sizes)
    entries, images = b"", b""
    for size in sizes:
        data = pngs[size]
        side = 0 if size == 256 else size  # one byte per side: 0 means 256
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        images += data
        offset += len(data)
    return header + entries + images


def icns(pngs: dict[int, bytes]) -> bytes:
    """An ICNS file holding ``pngs`` (side -> PNG bytes) under Apple's PNG types."""
    body = b"".join(
        ICNS_TYPES[size] + struct.pack(">I", 8 + len(pngs[size])) + pngs[size]
        for size in sorted(pngs)
    )
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display needed
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    pngs = {size: render_png(SOURCE, size) for size in PNG_SIZES}
    for size, data in pngs.items():
        png_path(size).write_bytes(data)
    (ICONS / "mxmailer.ico").write_bytes(ico({s: pngs[s] for s in ICO_SIZES}))
    (ICONS / "mxmailer.icns").write_bytes(icns({s: pngs[s] for s in ICNS_TYPES}))
    print(f"render_icons: wrote {len(pngs)} PNGs, mxmailer.ico and mxmailer.icns in {ICONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
