"""Matplotlib figures of the analyses (occlusion, evolution, invariance, cascading sanity), returned as
RGB arrays so they can go to PNG files and TensorBoard alike."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vizdeconv.viz.pictures import to_display  # noqa: E402


def _render(figure) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1] of a matplotlib figure (closed afterwards)."""
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0
    plt.close(figure)
    return pixels


def occlusion_figure(result: dict, picture: np.ndarray, label: int, class_names) -> np.ndarray:
    """original | (b) total activation | (c) projection | (d) p(true class) | (e) most probable class."""
    figure, axes = plt.subplots(1, 5, figsize=(17, 3.6), constrained_layout=True)
    shown = picture.astype(np.float32) / 255.0
    axes[0].imshow(shown.squeeze(), cmap="gray" if shown.shape[-1] == 1 else None)
    axes[0].set_title(f"(a) {class_names[label]}")
    extent = (result["cols"][0] - 0.5, result["cols"][-1] + 0.5, result["rows"][-1] + 0.5, result["rows"][0] - 0.5)
    image = axes[1].imshow(result["activation"], cmap="viridis", extent=extent)
    figure.colorbar(image, ax=axes[1], shrink=0.8)
    axes[1].set_title(f"(b) {result['layer']} map {result['channel']}: total")
    axes[2].imshow(to_display(result["projection"][None])[0].squeeze())
    axes[2].set_title(f"(c) map {result['channel']} projected")
    image = axes[3].imshow(result["probability"], cmap="magma", vmin=0, vmax=1, extent=extent)
    figure.colorbar(image, ax=axes[3], shrink=0.8)
    axes[3].set_title(f"(d) p({class_names[label]})")
    classes = sorted(set(result["predicted"].ravel().tolist()))
    lookup = {c: i for i, c in enumerate(classes)}
    colours = plt.get_cmap("tab10", max(len(classes), 2))
    image = axes[4].imshow(
        np.vectorize(lookup.get)(result["predicted"]),
        cmap=colours,
        vmin=-0.5,
        vmax=max(len(classes), 2) - 0.5,
        extent=extent,
    )
    bar = figure.colorbar(image, ax=axes[4], shrink=0.8, ticks=range(len(classes)))
    bar.ax.set_yticklabels([class_names[c] for c in classes])
    axes[4].set_title("(e) most probable class")
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    return _render(figure)


def evolution_figure(steps, tiles: np.ndarray, layer: str, max_rows: int = 64, channels=None) -> np.ndarray:
    """Rows = feature maps, columns = checkpoints in training order, each column headed by its step.

    Args:
      tiles: [maps, checkpoints, h, w, 3] in [0, 1].
      channels: each row's feature map number (default: 0, 1, ...), written beside the row.
    """
    rows = min(len(tiles), max_rows)
    figure, axes = plt.subplots(rows, len(steps), figsize=(1.1 * len(steps) + 0.8, 1.1 * rows + 0.6), squeeze=False)
    for r in range(rows):
        for c, step in enumerate(steps):
            axes[r, c].imshow(tiles[r, c].squeeze())
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(f"step {step}", fontsize=8)
            if c == 0:
                axes[r, c].set_ylabel(str(r if channels is None else channels[r]), fontsize=7, rotation=0, labelpad=10)
    height = 1.1 * rows + 0.6
    figure.suptitle(
        f"{layer}: strongest activation of each map, projected, over training", fontsize=10, y=1 - 0.1 / height
    )
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))  # room for the title above the headers
    return _render(figure)


def invariance_figure(kind: str, result: dict, layers) -> np.ndarray:
    """Mean normalized feature distance per layer, and p(true class), against the transformation."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    values = result["values"]
    for layer in layers:
        left.plot(values, result["distance"][layer].mean(0), marker="o", label=layer)
    left.set_xlabel(kind)
    left.set_ylabel("||f(x') - f(x)|| / ||f(x)||")
    left.legend(fontsize=8)
    for row in result["probability"]:
        right.plot(values, row, color="0.7", linewidth=0.8)
    right.plot(values, result["probability"].mean(0), color="C3", marker="o", label="mean")
    right.set_xlabel(kind)
    right.set_ylabel("p(true class)")
    right.set_ylim(0, 1)
    right.legend(fontsize=8)
    figure.suptitle(f"invariance to {kind}")
    return _render(figure)


def sanity_figure(result: dict, layer: str, max_units: int = 6) -> np.ndarray:
    """The similarity curves over the cascade and, per unit, its projections stage by stage."""
    stages, units = result["stages"], min(result["projections"].shape[1], max_units)
    figure = plt.figure(figsize=(max(8, 1.3 * len(stages)), 3.2 + 1.3 * units), constrained_layout=True)
    grid = figure.add_gridspec(units + 2, len(stages))
    curve = figure.add_subplot(grid[:2, :])
    for name in ("spearman", "ssim"):
        curve.plot(range(len(stages)), np.nanmean(result[name], axis=1), marker="o", label=name)
    curve.set_xticks(range(len(stages)), [s if i == 0 else f"+{s}" for i, s in enumerate(stages)], fontsize=8)
    curve.set_ylabel("similarity to trained")
    curve.set_title(f"cascading randomization, {layer}: top layer first")
    curve.legend(fontsize=8)
    for u in range(units):
        for s in range(len(stages)):
            axis = figure.add_subplot(grid[2 + u, s])
            axis.imshow(to_display(result["projections"][s, u][None])[0].squeeze())
            axis.set_xticks([])
            axis.set_yticks([])
    return _render(figure)


def attribution_figure(picture: np.ndarray, panels: list[dict], caption: str) -> np.ndarray:
    """The image, then one panel per method: its map over the image (jet, half transparent) with a colour bar.

    Args:
      picture: [H, W, 3] float in [0, 1], what the model sees.
      panels: {"method", "map" [H, W] in [0, 1], "title"} per method.
      caption: the first panel's title (e.g. the true class).
    """
    figure, axes = plt.subplots(1, 1 + len(panels), figsize=(3.1 * (1 + len(panels)), 3.4), constrained_layout=True)
    axes = np.atleast_1d(axes)
    axes[0].imshow(picture)
    axes[0].set_title(caption, fontsize=9)
    grey = picture.mean(axis=-1)
    for axis, panel in zip(axes[1:], panels):
        axis.imshow(grey, cmap="gray", vmin=0, vmax=1)
        image = axis.imshow(panel["map"], cmap="jet", alpha=0.5, vmin=0, vmax=1)
        figure.colorbar(image, ax=axis, shrink=0.75)
        axis.set_title(f"{panel['method']}\n{panel['title']}", fontsize=9)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    return _render(figure)
