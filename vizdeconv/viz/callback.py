"""`DeconvnetCallback`: deconvnet strips, top-feature grids and attribution strips in TensorBoard while
`model.fit` runs."""

import os

import keras
import numpy as np
import tensorflow as tf

from vizdeconv.viz.plugin import probes
from vizdeconv.viz.summaries import ReconstructionSummary


class DeconvnetCallback(keras.callbacks.Callback):
    """Writes original | layer | layer ... strips and top-feature grids of fixed probe images.

    The images go to `<log_dir>/train` as tags `reconstructions` and `top_features/<layer>`, step =
    epoch, beside what `keras.callbacks.TensorBoard(log_dir)` writes there. With `snapshot_dir`, the
    model is also saved as `<snapshot_dir>/epoch_NNNN.keras` at the same epochs (for feature evolution), with
    `mode` and `rectify` recorded in each file, so the explorer, the analyses and the TensorBoard tab open a
    snapshot with the rule its pictures were made with.

    Args:
      log_dir: the TensorBoard log dir (the same one `keras.callbacks.TensorBoard` uses).
      probe_images: [P, H, W, C] float32 inputs as the model takes them.
      layers: layer names to show (default: the model's rectified feature maps).
      every_n_epochs: write after every n-th epoch (and before training starts).
      mode: "deconvnet" | "guided" | "bias_subtract".
      rectify: where the projection rule applies: "relu" (ReLU-family activations only; others pass their own
        gradient) or "all" (every activation, e.g. a GELU or swish network's); Guided Grad-CAM guides there too.
      originals: [P, H, W, 3] in [0, 1] as a person sees the probes (default: the inputs, rescaled).
      top_k: how many of the strongest feature maps of the first probe each `top_features` grid shows.
      display_scale: the pictures' enlargement.
      snapshot_dir: where to save the model at the same epochs (None: not saved).
      attribution: attribution methods (e.g. ["gradcam"]; see `vizdeconv.Attribution`) whose maps of each
        probe's top class are written as `attribution/<method>`: the probes, and below them each map over
        its probe (`pictures.overlay`), enlarged by `display_scale`.
    """

    # 11 parameters: a Keras callback's public keyword settings (as keras.callbacks.TensorBoard takes them).
    def __init__(
        self,
        log_dir: str,
        probe_images,
        layers=None,
        every_n_epochs: int = 1,
        mode: str = "deconvnet",
        originals=None,
        top_k: int = 16,
        display_scale: int = 4,
        snapshot_dir: str | None = None,
        attribution=None,
        rectify: str = "relu",
    ):
        super().__init__()
        from vizdeconv.methods import reconstruct

        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive integer, got {every_n_epochs}")
        self.mode, self.rectify = reconstruct.check_mode(mode), reconstruct.check_rectify(rectify)
        self.log_dir, self.every = log_dir, every_n_epochs
        self.probes = np.asarray(probe_images, np.float32)
        self.layers, self.originals = layers, originals
        self.top_k, self.display_scale, self.snapshot_dir = top_k, display_scale, snapshot_dir
        self.summary = self.writer = None
        self.attribution = list(attribution or [])
        from vizdeconv.methods.attribution import check_method

        for method in self.attribution:
            check_method(method)
        self._attributions = {}

    def _write(self, epoch: int) -> None:
        if self.summary is None:
            from vizdeconv.methods.deconvnet import Deconvnet

            self.summary = ReconstructionSummary(
                Deconvnet(self.model, self.mode, rectify=self.rectify),
                self.probes,
                self.originals,
                self.layers,
                self.top_k,
                self.display_scale,
            )
            self.writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "train"))
            # Marks the log dir for TensorBoard's Deconvnet tab, which projects with the snapshots.
            probes.write_probes(
                os.path.join(self.log_dir, "train"),
                self.probes,
                self.summary.originals,
                probes.Marking(self.log_dir, "keras", model=self.snapshot_dir),
                writer=self.writer,
            )
        with self.writer.as_default():
            self.summary.write(epoch)
            for method in self.attribution:
                tf.summary.image(f"attribution/{method}", self.attribution_strip(method)[None], step=epoch)
        self.writer.flush()
        if self.snapshot_dir:
            from vizdeconv.runs.subject import save_with_settings

            os.makedirs(self.snapshot_dir, exist_ok=True)
            path = os.path.join(self.snapshot_dir, f"epoch_{epoch:04d}.keras")
            save_with_settings(self.model, path, self.mode, self.rectify)

    def attribution_strip(self, method: str) -> np.ndarray:
        """[2 * H * scale + gap, P * (W * scale + gap) - gap, 3] in [0, 1]: the probes in a row, and below
        each its top class's map of `method` with the model's current weights."""
        from vizdeconv.methods.attribution import Attribution
        from vizdeconv.viz.pictures import grid, overlay, upscale

        if method not in self._attributions:  # the Graph reads the variables at every call: it follows training
            self._attributions[method] = Attribution(self.model, method, rectify=self.rectify)
        maps = self._attributions[method].explain(self.probes).maps
        originals = np.asarray(self.summary.originals, np.float32)
        originals = np.repeat(originals, 3, axis=-1) if originals.shape[-1] == 1 else originals[..., :3]
        rows = np.concatenate([originals, overlay(originals, maps)])
        return grid(upscale(rows, self.display_scale), columns=len(self.probes))

    def on_train_begin(self, logs=None):
        """Writes the pictures of step 0 (`logs` is Keras's, unused)."""
        self._write(0)

    def on_epoch_end(self, epoch, logs=None):
        """Writes the pictures (and the snapshot) after every n-th `epoch` (`logs` is Keras's, unused)."""
        if (epoch + 1) % self.every == 0:
            self._write(epoch + 1)

    def on_train_end(self, logs=None):
        """Closes the summary writer (`logs` is Keras's, unused)."""
        if self.writer is not None:
            self.writer.close()
