"""Images a person drops into the Deconvnet tab: checked before they are decoded, decoded as the explorer
decodes a folder's files, and held in memory only (a bounded cache, least recently used first out); nothing
is written to the logdir or anywhere else."""

import collections
import hashlib
import struct
import threading

import numpy as np

MAX_BYTES = 16 * 1024 * 1024  # a body over this is refused before it is read whole
MAX_PIXELS = 40_000_000  # an image whose header declares more is refused before decoding (decompression bombs)
CACHE_ENTRIES = 64  # uploads kept (each one image at the model's size: a few hundred KB at 224x224)
CONTENT_TYPES = ("application/octet-stream", "image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp")


class BadUpload(ValueError):
    """A body that is not an image this tab takes; the message is one line for the person who sent it."""


def declared_pixels(contents: bytes) -> int | None:
    """Width x height from a PNG, GIF, BMP or JPEG header without decoding; None for other formats.

    Raises:
      BadUpload: a header too short to hold its size (a truncated file).
    """
    if contents.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(contents) < 24:
            raise BadUpload("truncated PNG header")
        width, height = struct.unpack(">II", contents[16:24])
        return width * height
    if contents[:6] in (b"GIF87a", b"GIF89a"):
        if len(contents) < 10:
            raise BadUpload("truncated GIF header")
        width, height = struct.unpack("<HH", contents[6:10])
        return width * height
    if contents.startswith(b"BM"):
        if len(contents) < 26:
            raise BadUpload("truncated BMP header")
        width, height = struct.unpack("<ii", contents[18:26])
        return abs(width) * abs(height)
    if contents.startswith(b"\xff\xd8"):
        return _jpeg_pixels(contents)
    return None


def _jpeg_pixels(contents: bytes) -> int:
    """Width x height from a JPEG's first start-of-frame marker."""
    position = 2
    while position + 4 <= len(contents):
        if contents[position] != 0xFF:
            raise BadUpload("not a JPEG: bad marker")
        marker = contents[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", contents[position + 2 : position + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if position + 9 > len(contents):
                break
            height, width = struct.unpack(">HH", contents[position + 5 : position + 9])
            return width * height
        position += 2 + length
    raise BadUpload("truncated JPEG: no frame header")


def decode_upload(contents: bytes, size, channels: int) -> np.ndarray:
    """Encoded image bytes -> [H, W, channels] uint8 at the model's `size`, as the explorer decodes a file
    (the central window of the model's aspect ratio, resized with antialiasing; GIF: its first frame).

    Raises:
      BadUpload: empty, over MAX_PIXELS by its header, or not a decodable image.
    """
    import tensorflow as tf

    from vizdeconv.io.sources import decode

    if not contents:
        raise BadUpload("the request has no image (empty body)")
    pixels = declared_pixels(contents)
    if pixels is not None and pixels > MAX_PIXELS:
        raise BadUpload(f"the image declares {pixels / 1e6:.0f} megapixels; at most {MAX_PIXELS / 1e6:.0f} are taken")
    try:
        return decode(tf.constant(contents), size, channels).numpy()
    except (tf.errors.OpError, ValueError) as error:
        reason = " ".join(str(getattr(error, "message", error)).split()).split(" [")[0][:120]
        raise BadUpload(f"not a decodable image ({reason})") from None


class Uploads:
    """Decoded uploads by token, at most `entries` of them, the least recently used dropped first."""

    def __init__(self, entries: int = CACHE_ENTRIES):
        self.entries = entries
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def token(run: str, contents: bytes) -> str:
        """The same bytes for the same run get the same token (no second copy)."""
        return "u:" + hashlib.sha256(run.encode() + b"\0" + contents).hexdigest()[:20]

    def put(self, token: str, item: dict) -> None:
        with self._lock:
            self._items[token] = item
            self._items.move_to_end(token)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def get(self, token: str) -> dict | None:
        with self._lock:
            item = self._items.get(token)
            if item is not None:
                self._items.move_to_end(token)
            return item

    def __len__(self) -> int:
        return len(self._items)
