"""Images a person drops into the Deconvnet tab: checked before they are decoded, decoded as the explorer
decodes a folder's files, and held in memory only (a bounded cache, least recently used first out); nothing
is written to the logdir or anywhere else."""

import collections
import hashlib
import threading

import numpy as np

MAX_BYTES = 16 * 1024 * 1024  # a body over this is refused before it is read whole
MAX_PIXELS = 40_000_000  # an image whose header declares more is refused before decoding (decompression bombs)
CACHE_ENTRIES = 64  # uploads kept (each one image at the model's size: a few hundred KB at 224x224)
CONTENT_TYPES = ("application/octet-stream", "image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp")


class BadUpload(ValueError):
    """A body that is not an image this tab takes; the message is one line for the person who sent it."""


def declared_pixels(contents: bytes) -> int:
    """Width x height from the image's header without decoding it (a JPEG's frame header, the explorer's
    reading of a PNG, GIF or BMP header); 0 for other formats.

    Raises:
      tf.errors.OpError: a JPEG whose header cannot be read.
    """
    import tensorflow as tf

    from vizdeconv.data.sources import header_pixels

    tensor = tf.constant(contents)
    if tf.io.is_jpeg(tensor):
        height, width = tf.image.extract_jpeg_shape(tensor).numpy()[:2]
        return int(height) * int(width)
    return int(header_pixels(tensor))


def decode_upload(contents: bytes, size, channels: int) -> np.ndarray:
    """Encoded image bytes -> [H, W, channels] uint8 at the model's `size`, as the explorer decodes a file
    (the central window of the model's aspect ratio, resized with antialiasing; GIF: its first frame).

    Raises:
      BadUpload: empty, over MAX_PIXELS by its header, or not a decodable image.
    """
    import tensorflow as tf

    from vizdeconv.data.sources import decode, first_error_line

    if not contents:
        raise BadUpload("the request has no image (empty body)")
    try:
        pixels = declared_pixels(contents)
        if pixels > MAX_PIXELS:
            raise BadUpload(
                f"the image declares {pixels / 1e6:.0f} megapixels; at most {MAX_PIXELS / 1e6:.0f} are taken"
            )
        return decode(tf.constant(contents), size, channels).numpy()
    except (tf.errors.OpError, ValueError) as error:
        if isinstance(error, BadUpload):
            raise
        raise BadUpload(f"not a decodable image ({first_error_line(error)})") from None


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
