"""scripts/airbench_on_device.py: the lossless packing that carries this workplace's CIFAR-10 copy to a GPU
machine. A JPEG-round-tripped tarball (like the shared copy) packs and restores bit for bit; a restore that
differs from the originals (a flipped residual byte) is refused."""

import importlib.util
import io
import lzma
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from tests.support.builders import ROOT


def script():
    spec = importlib.util.spec_from_file_location("on_device", os.path.join(ROOT, "scripts", "airbench_on_device.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def jpeg_round_trip(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=75)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def write_tarball(folder, per_batch: int = 3) -> dict:
    """A small tarball in the official layout whose images went through a JPEG round trip; returns
    {split: (images [N, 32, 32, 3], labels [N])}."""
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (5 * per_batch + per_batch, 8, 8, 3)), np.ones((1, 4, 4, 1)))
    images = np.stack([jpeg_round_trip(image.astype(np.uint8)) for image in smooth])
    labels = rng.integers(0, 10, len(images)).astype(np.uint8)
    expected, at = {"train": ([], []), "test": ([], [])}, 0
    with tarfile.open(os.path.join(folder, "cifar-10-binary.tar.gz"), "w:gz") as archive:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            chunk, chunk_labels = images[at : at + per_batch], labels[at : at + per_batch]
            at += per_batch
            rows = np.concatenate([chunk_labels[:, None], chunk.transpose(0, 3, 1, 2).reshape(per_batch, -1)], 1)
            payload = rows.astype(np.uint8).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
            split = "test" if name.startswith("test") else "train"
            expected[split][0].append(chunk)
            expected[split][1].append(chunk_labels)
    return {split: (np.concatenate(a), np.concatenate(b)) for split, (a, b) in expected.items()}


def test_the_packed_copy_restores_bit_for_bit_and_a_damaged_one_is_refused(tmp_path):
    on_device = script()
    expected = write_tarball(tmp_path)
    out = str(tmp_path / "packed")
    on_device.pack(str(tmp_path), None, out)
    for split, (images, labels) in expected.items():
        restored, restored_labels = on_device.restore(out, split)
        np.testing.assert_array_equal(restored, images)
        np.testing.assert_array_equal(restored_labels, labels)
    assert os.path.isfile(os.path.join(out, "airbench_on_device.py"))  # travels with the data
    residual = bytearray(lzma.decompress(open(os.path.join(out, "test.res.xz"), "rb").read()))
    residual[5] = (residual[5] + 1) % 256
    with open(os.path.join(out, "test.res.xz"), "wb") as handle:
        handle.write(lzma.compress(bytes(residual)))
    with pytest.raises(SystemExit, match="checksum"):
        on_device.restore(out, "test")
