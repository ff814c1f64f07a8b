"""The pointing game's task (test and benchmark alike): a red or a blue square pasted at a random place."""

import numpy as np

SIZE, SIDE = 16, 4


def squares(count: int, seed: int):
    """Canvases [N, 16, 16, 3] in [0, 1] with one 4x4 square, its class (0 red, 1 blue), its corner."""
    rng = np.random.default_rng(seed)
    images = np.full((count, SIZE, SIZE, 3), 0.5, np.float32)
    labels = rng.integers(0, 2, count)
    corners = rng.integers(0, SIZE - SIDE + 1, (count, 2))
    for image, label, (top, left) in zip(images, labels, corners):
        image[top : top + SIDE, left : left + SIDE] = (0.9, 0.1, 0.1) if label == 0 else (0.1, 0.1, 0.9)
    return images, labels, corners


def hit_rate(maps, corners, tolerance: int = 1) -> float:
    """Share of maps whose maximum lies on the square (grown by `tolerance` pixels, as the pointing game)."""
    hits = 0
    for saliency, (top, left) in zip(maps, corners):
        row, col = np.unravel_index(np.argmax(saliency), saliency.shape)
        hits += top - tolerance <= row < top + SIDE + tolerance and left - tolerance <= col < left + SIDE + tolerance
    return hits / len(maps)
