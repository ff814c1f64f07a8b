"""The derandomized ("alternating") flip of the speedrun literature: each training image is mirrored every
other epoch, from a random first choice, still a pure function of (seed, step) so a resumed run sees the same."""

import numpy as np

from vizdeconv.data import pipeline
from vizdeconv.nn.preprocess import standardize


def flips_per_epoch(images, batches, batch_size, steps_per_epoch) -> dict:
    """{(epoch, example): mirrored?} read off the batches by comparing each with its image and its mirror."""
    seen = {}
    for step, (batch, labels) in enumerate(batches):
        for picture, example in zip(batch.numpy(), labels.numpy()):
            plain = standardize(images[example : example + 1].astype(np.float32)).numpy()[0]
            mirrored = plain[:, ::-1]
            assert np.allclose(picture, plain, atol=1e-5) or np.allclose(picture, mirrored, atol=1e-5)
            seen[step // steps_per_epoch, int(example)] = bool(np.allclose(picture, mirrored, atol=1e-5))
    return seen


def test_alternating_flip_mirrors_each_image_every_other_epoch_and_resumes_exactly():
    count, batch = 20, 5
    images = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(count, dtype=np.int32)  # the label names the example
    steps = 3 * count // batch  # three epochs
    full = list(pipeline.train_dataset(images, labels, batch, seed=3, start_step=0, end_step=steps, size=32,
                                       flip="alternating"))  # fmt: skip
    seen = flips_per_epoch(images, full, batch, count // batch)
    for example in range(count):
        assert seen[0, example] != seen[1, example] != seen[2, example], example
    assert 4 <= sum(seen[0, e] for e in range(count)) <= 16  # the first epoch's choice is random
    resumed = list(pipeline.train_dataset(images, labels, batch, seed=3, start_step=7, end_step=steps, size=32,
                                          flip="alternating"))  # fmt: skip
    for (a, la), (b, lb) in zip(full[7:], resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
    # The reference's random flip does not alternate: some image keeps its side from one epoch to the next.
    plain = pipeline.train_dataset(images, labels, batch, seed=3, start_step=0, end_step=steps, size=32)
    random = flips_per_epoch(images, plain, batch, count // batch)
    assert any(random[0, e] == random[1, e] for e in range(count))
