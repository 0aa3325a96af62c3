"""The icon set: one SVG, and the PNG, ICO and ICNS files rendered from it.

The committed files are what the bundle, the window and the .desktop file use, so these
tests check that they exist at every size, that they still match the SVG (an edited SVG
without re-running packaging/render_icons.py fails here), and that the Windows and macOS
containers are files Qt's own ICO and ICNS readers accept, holding the same PNGs.
"""

from __future__ import annotations

import os
import struct

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtGui import QImage, QImageReader
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from gui.resources_path import ICON_SIZES, icon_files, resources_dir
from tests.packaging.support import ICONS, load_script

render_icons = load_script("render_icons")

#: Largest mean difference per channel (0-255) between a committed PNG and a fresh
#: rendering: anti-aliasing may differ a little between Qt releases, a changed drawing
#: does not stay under it.
MAX_MEAN_DIFFERENCE = 1.0


def test_the_svg_is_square_and_qt_can_draw_it(qapp: QApplication) -> None:
    renderer = QSvgRenderer(str(render_icons.SOURCE))
    assert renderer.isValid()
    box = renderer.viewBoxF()
    assert box.width() == box.height() > 0


def test_every_size_is_rendered_and_the_window_uses_them_all() -> None:
    assert tuple(render_icons.PNG_SIZES) == ICON_SIZES
    assert resources_dir() / "icons" == ICONS
    assert icon_files() == [render_icons.png_path(size) for size in ICON_SIZES]


def test_the_window_icon_offers_every_size(qapp: QApplication) -> None:
    from gui.app import _app_icon  # the icon gui.app.main gives every window

    icon = _app_icon()
    assert {(s.width(), s.height()) for s in icon.availableSizes()} == {
        (size, size) for size in ICON_SIZES
    }


@pytest.mark.parametrize("size", ICON_SIZES)
def test_each_png_has_its_size_and_matches_the_svg(qapp: QApplication, size: int) -> None:
    committed = QImage(str(render_icons.png_path(size)))
    assert not committed.isNull()
    assert (committed.width(), committed.height()) == (size, size)
    assert committed.hasAlphaChannel()
    # The tile's rounded corner is transparent and its middle is not.
    assert committed.pixelColor(0, 0).alpha() == 0
    assert committed.pixelColor(size // 2, size // 2).alpha() == 255
    fresh = QImage.fromData(render_icons.render_png(render_icons.SOURCE, size))
    assert _mean_difference(committed, fresh) <= MAX_MEAN_DIFFERENCE, (
        "the PNG no longer matches mxmailer.svg: run packaging/render_icons.py"
    )


def test_the_ico_holds_the_pngs_and_qt_reads_it(qapp: QApplication) -> None:
    data = (ICONS / "mxmailer.ico").read_bytes()
    reserved, kind, count = struct.unpack_from("<HHH", data)
    assert (reserved, kind, count) == (0, 1, len(render_icons.ICO_SIZES))
    for index, size in enumerate(render_icons.ICO_SIZES):
        width, height, _, _, planes, bits, length, offset = struct.unpack_from(
            "<BBBBHHII", data, 6 + 16 * index
        )
        assert (width or 256, height or 256, planes, bits) == (size, size, 1, 32)
        assert data[offset : offset + length] == render_icons.png_path(size).read_bytes()
    assert _qt_sizes(data, b"ico") == set(render_icons.ICO_SIZES)


def test_the_icns_holds_the_pngs_and_qt_reads_it(qapp: QApplication) -> None:
    data = (ICONS / "mxmailer.icns").read_bytes()
    assert data[:4] == b"icns"
    assert struct.unpack_from(">I", data, 4)[0] == len(data)
    found, offset = {}, 8
    while offset < len(data):
        kind = data[offset : offset + 4]
        (length,) = struct.unpack_from(">I", data, offset + 4)
        found[kind] = data[offset + 8 : offset + length]
        offset += length
    assert offset == len(data)
    assert found == {
        kind: render_icons.png_path(size).read_bytes()
        for size, kind in render_icons.ICNS_TYPES.items()
    }
    assert _qt_sizes(data, b"icns") == set(render_icons.ICNS_TYPES)


def _qt_sizes(data: bytes, image_format: bytes) -> set[int]:
    """The sides of every image Qt's reader for ``image_format`` finds in ``data``."""
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer, QByteArray(image_format))
    assert reader.canRead(), reader.errorString()
    sides = set()
    for number in range(reader.imageCount()):
        assert reader.jumpToImage(number)
        image = reader.read()
        assert not image.isNull(), reader.errorString()
        assert image.width() == image.height()
        sides.add(image.width())
    return sides


def _mean_difference(one: QImage, other: QImage) -> float:
    """Mean absolute difference per channel (RGBA, 0-255) of two images of one size."""
    assert one.size() == other.size()
    a, b = _rgba(one), _rgba(other)
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def _rgba(image: QImage) -> bytes:
    """The pixels as tightly packed RGBA bytes (no padding at the end of a row)."""
    converted = image.convertToFormat(QImage.Format.Format_RGBA8888)
    row = 4 * converted.width()
    bits = bytes(converted.constBits())
    stride = converted.bytesPerLine()
    return b"".join(bits[y * stride : y * stride + row] for y in range(converted.height()))
