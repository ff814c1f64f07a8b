"""Translation by up to `data.translate` pixels (airbench's 2): each training image is a window of the image
padded with its own mirror image at the borders, every shift drawn, a pure function of (seed, step)."""

import numpy as np
import pytest

from vizdeconv.data import pipeline
from vizdeconv.nn.preprocess import standardize


def test_reflect_pad_mirrors_without_repeating_the_edge():
    image = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    padded = pipeline.reflect_pad(image, 2)[0, :, :, 0]
    assert padded.shape == (8, 8)
    np.testing.assert_array_equal(padded[2, :], [2, 1, 0, 1, 2, 3, 2, 1])  # row 0 of the image, mirrored out
    np.testing.assert_array_equal(padded[:, 2], [8, 4, 0, 4, 8, 12, 8, 4])
    assert pipeline.reflect_pad(image, 0) is image
    with pytest.raises(ValueError, match="data.translate"):
        pipeline.reflect_pad(image, 4)


def test_translated_batches_are_shifted_windows_of_the_mirrored_image_and_resume_exactly():
    count, batch, pad = 16, 8, 2
    images = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(count, dtype=np.int32)
    steps = 8
    full = list(pipeline.train_dataset(images, labels, batch, seed=5, start_step=0, end_step=steps, size=32,
                                       translate=pad))  # fmt: skip
    padded = np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode="reflect").astype(np.float32)
    shifts = set()
    for pictures, examples in full:
        for picture, example in zip(pictures.numpy(), examples.numpy()):
            found = []
            for dy in range(2 * pad + 1):
                for dx in range(2 * pad + 1):
                    window = standardize(padded[example : example + 1, dy : dy + 32, dx : dx + 32]).numpy()[0]
                    for mirrored in (False, True):
                        if np.allclose(picture, window[:, ::-1] if mirrored else window, atol=1e-5):
                            found.append((dy - pad, dx - pad))
            assert found, f"example {example} is no shifted window of its padded image"
            shifts.add(found[0])
    assert len(shifts) >= 15  # of the 25 shifts, drawn uniformly for 64 images
    resumed = list(pipeline.train_dataset(images, labels, batch, seed=5, start_step=5, end_step=steps, size=32,
                                          translate=pad))  # fmt: skip
    for (a, la), (b, lb) in zip(full[5:], resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
