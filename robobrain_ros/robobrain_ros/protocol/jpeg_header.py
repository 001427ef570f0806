"""What a JPEG's marker segments say before any decoding: size, sample precision, colour components, Exif.

Read to refuse oversized images before decoding them, and to decide whether a camera's JPEG can go to the
model server as it is (image_encoding.pass_jpeg_through).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Start-of-frame markers (baseline, progressive, lossless, arithmetic...): they carry the image size.
# Not C4 (Huffman tables), C8 (reserved), CC (arithmetic conditioning).
_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Baseline and extended/progressive Huffman frames: what every decoder reads (lossless and arithmetic ones not).
_COMMON_FRAME_MARKERS = frozenset((0xC0, 0xC1, 0xC2))
# Markers without a length field: TEM and the restart markers RST0-7.
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])
_APP1 = 0xE1


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    precision: int        # bits per sample (8 in camera JPEGs; 12 exists)
    components: int       # 1 = grey, 3 = YCbCr (or RGB), 4 = CMYK
    common_coding: bool   # baseline or progressive Huffman, which every decoder reads
    exif: bool            # an Exif APP1 segment before the frame header (it may carry an orientation)


def read_jpeg_header(data) -> JpegHeader | None:
    """The header of the JPEG in data (bytes-like), walking the marker segments up to the first frame header;
    None when data is not a JPEG, the header is cut or corrupt, or the height is only defined later (DNL)."""
    data = memoryview(data).cast('B')
    if data[:2] != b'\xff\xd8':
        return None
    pos, exif = 2, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:                       # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):        # a second SOI, EOI, or scan data before any frame header
            return None
        (length,) = struct.unpack('>H', data[pos + 2:pos + 4])
        if marker == _APP1 and bytes(data[pos + 4:pos + 10]) == b'Exif\x00\x00':
            exif = True
        if marker in _FRAME_MARKERS:
            if pos + 10 > len(data):
                return None
            precision = data[pos + 4]
            height, width = struct.unpack('>HH', data[pos + 5:pos + 9])
            if not height:                       # defined later by a DNL marker: unknown before decoding
                return None
            return JpegHeader(width=width, height=height, precision=precision, components=data[pos + 9],
                              common_coding=marker in _COMMON_FRAME_MARKERS, exif=exif)
        if length < 2:
            return None
        pos += 2 + length
    return None
