"""train_and_evaluate(config, run): the training loop, checkpoints, summaries and final test accuracy."""

import os
import signal
import tempfile
import threading
import time

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from vizdeconv import config as config_lib
from vizdeconv.data import pipeline, sources
from vizdeconv.errors import WriteError, is_write_failure, reason
from vizdeconv.hardware import cpu, distribute, precision
from vizdeconv.methods.deconvnet import Deconvnet
from vizdeconv.nn import preprocess
from vizdeconv.nn.convnet import build_model
from vizdeconv.runs import checkpoints, rundir
from vizdeconv.runs.lock import RunLock
from vizdeconv.training import optim, steps
from vizdeconv.viz.plugin import probes
from vizdeconv.viz.summaries import ReconstructionSummary


class _StopRequest:
    """Turns the first Ctrl-C or SIGTERM into a flag the loop checks between step chunks."""

    def __init__(self):
        self.signal = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum
        for sig, handler in self._previous.items():  # a second signal acts as usual
            signal.signal(sig, handler)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _flat_hparams(config) -> dict:
    flat = {}
    for key, value in rundir.config_to_dict(config).items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, item in items:
            name = f"{key}.{sub}" if sub else key
            flat[name] = item if isinstance(item, (bool, int, float, str)) else str(item)
    return flat


def _next_boundary(step: int, config) -> int:
    intervals = (config.log_every, config.eval_every, config.checkpoint_every, config.summary_every)
    kept = [s for s in config.keep_steps if s > step]
    return min([config.steps] + kept + [(step // every + 1) * every for every in intervals])


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{seconds:02d}s"


def train_and_evaluate(config, workdir: str, log=print) -> dict:
    """Trains (or resumes) the run in `workdir` up to `config.steps` and evaluates on the test split.

    Returns:
      the final metrics (also in `<workdir>/metrics.json`), with `status` 'complete', or
      'interrupted' after Ctrl-C / SIGTERM (a checkpoint was saved first).
    Raises:
      ValueError / FileNotFoundError / PermissionError for problems a user can fix (bad data, a run
      folder of another config, an unwritable folder); FloatingPointError when the loss diverges.
    """
    requested = config.precision
    config = config_lib.resolve(config)
    strategy = distribute.make_strategy(config.strategy, config.devices)
    chief = distribute.is_chief(strategy)
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    if chief:
        rundir.check(config, workdir)  # before the slow data loading, so a wrong folder fails at once
    # Every worker decides this alike (it only reads the shared folder), so none waits for the others.
    previous, done = rundir.read_metrics(workdir), checkpoints.newest_number(checkpoint_dir)
    if previous and previous.get("step") == done >= config.steps:
        log(
            f"run already reached step {done} of {config.steps}: test accuracy "
            f"{previous.get('test_accuracy', float('nan')):.4f}"
        )
        return previous
    trainer = Trainer(config, workdir, strategy, chief, requested, log)
    if not chief:
        return trainer.run()
    rundir.create(workdir)
    with RunLock(workdir, log):  # the chief alone writes; a second writer is refused here
        try:
            return trainer.run()
        except (OSError, tf.errors.OpError) as error:
            if isinstance(error, WriteError) or not is_write_failure(error):
                raise
            checkpoints.remove_debris(checkpoint_dir)
            raise WriteError(
                f"could not write to {workdir} ({reason(error)}); the newest checkpoint "
                f"is step {checkpoints.newest_number(checkpoint_dir)}; free space and run "
                "the same command again to resume"
            ) from None


class Trainer:
    """One training session of a run folder, step by step: set up, resume, train in chunks between
    boundaries (log, eval, checkpoint, summary), and evaluate at the end.

    Args:
      config: the resolved config; workdir: the run folder; strategy: the tf.distribute strategy;
      chief: whether this worker writes; requested: the precision the user asked for (for the header).
    """

    def __init__(self, config, workdir: str, strategy, chief: bool, requested: str, log=print):
        self.config, self.workdir, self.strategy, self.chief, self.log = config, workdir, strategy, chief, log
        self.requested = requested
        self.checkpoint_dir = os.path.join(workdir, "checkpoints")
        self.compute_dtype = precision.compute_dtype(config.precision)

    def run(self) -> dict:
        """Trains up to config.steps; returns the final or the interrupted metrics."""
        self.load_data()
        resumed = rundir.prepare(self.config, self.workdir) if self.chief else True
        why = "chosen for this hardware" if self.requested == "auto" else "as configured"
        self.log(
            f"precision: {self.config.precision} ({why}), {cpu.onednn_header(precision.onednn_enabled())}, "
            f"replicas: {self.strategy.num_replicas_in_sync}, run folder: {self.workdir}"
        )
        self.build()
        self.restore(resumed)
        self.make_writers()
        if not resumed and self.chief:
            self.write_first_summaries()
        stopped, train_seconds = self.train()
        if stopped is not None:
            checkpoints.save(self.manager, int(self.step))
            self.log(
                f"stopped by signal {stopped} at step {int(self.step)}; checkpoint saved, run the same "
                "command again to resume"
            )
            return {"status": "interrupted", "step": int(self.step), "signal": int(stopped)}
        return self.finish(train_seconds)

    def load_data(self) -> None:
        """Both splits in memory, through the same `Source` a run's analyses read (`sources.for_config`)."""
        self.train_images, self.train_labels = sources.for_config(self.config.data, "train").read_all()
        self.test_images, self.test_labels = sources.for_config(self.config.data, "test").read_all()

    def build(self) -> None:
        """The network, optimizer, checkpoint manager, compiled steps and the probe summaries."""
        config = self.config
        self.statistics = statistics = preprocess.run_statistics(config.data)  # None: per image
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")  # host-side, not mirrored
        with self.strategy.scope():
            self.model = build_model(config)
            # a whitening first layer is set from the first 5,000 training images, as the network sees them
            # (a checkpoint, if any, then replaces it with the same values)
            self.model.whiten(preprocess.preprocess_eval(self.train_images[:5000], config.data.image_size, statistics))
            moving = [v for norm in self.model.norms.values() for v in (norm.moving_mean, norm.moving_variance)]
            self.optimizer = optim.make_optimizer(config.optimizer, config.steps, statistics=moving)
            self.optimizer.build(self.model.trainable_variables)
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step)
        # Every worker saves (saving may need all of them); only the chief's copy is kept.
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            self.checkpoint_dir if self.chief else tempfile.mkdtemp(prefix="vizdeconv-worker-"),
            max_to_keep=config.keep_checkpoints,
        )
        self.eval_step = steps.make_eval_step(self.model, self.strategy, self.compute_dtype)
        self.eval_data = self.strategy.distribute_datasets_from_function(
            lambda context: pipeline.eval_dataset(
                self.test_images,
                self.test_labels,
                config.eval_batch_size,
                config.data.image_size,
                context,
                statistics=statistics,
            )
        )
        self.train_steps = steps.make_train_steps(
            self.model,
            self.optimizer,
            self.strategy,
            config.loss,
            config.batch_size,
            self.compute_dtype,
            config.optimizer.norm_bias_scale,
        )
        probe_index = np.sort(
            np.random.default_rng(config.seed).choice(
                len(self.test_images), min(config.reconstruction.probes, len(self.test_images)), replace=False
            )
        )
        probes_uint8 = self.test_images[probe_index]
        self.probe_index = probe_index
        self.summary_inputs = preprocess.preprocess_eval(probes_uint8, config.data.image_size, statistics)
        self.summary_originals = (
            preprocess.central_crop(probes_uint8, config.data.image_size).astype(np.float32) / 255.0
        )
        self.summary = ReconstructionSummary(
            Deconvnet(self.model, config.reconstruction.mode, self.compute_dtype, config.reconstruction.rectify),
            self.summary_inputs,
            self.summary_originals,
            top_k=config.reconstruction.top_k,
            display_scale=config.reconstruction.display_scale,
            clip_percentile=config.reconstruction.clip_percentile,
        )

    def restore(self, resumed: bool) -> None:
        """Restores the newest intact checkpoint and drops the summaries of steps that will be redone."""
        if self.chief:
            checkpoints.remove_debris(self.checkpoint_dir)
        latest = checkpoints.restore_newest(self.checkpoint, self.checkpoint_dir, self.log)
        if latest:
            self.log(f"resuming from {latest} at step {int(self.step)}")
        if self.chief and resumed:
            for name in ("train", "eval"):  # steps after the checkpoint will be written again
                rundir.drop_events_after(os.path.join(self.workdir, name), int(self.step))

    def make_writers(self) -> None:
        self.writers = {
            name: tf.summary.create_file_writer(os.path.join(self.workdir, name))
            if self.chief
            else tf.summary.create_noop_writer()
            for name in ("train", "eval")
        }

    def write_first_summaries(self) -> None:
        """HParams, the step-0 reconstructions and the probe marking of the Deconvnet tab."""
        # At the run folder's root, so the HParams dashboard finds train/ and eval/ metrics below it.
        with tf.summary.create_file_writer(self.workdir).as_default():
            hparams_api.hparams(_flat_hparams(self.config), trial_id=self.config.name)
        with self.writers["train"].as_default():
            self.summary.write(0)
        probes.write_probes(
            os.path.join(self.workdir, "train"),
            self.summary_inputs,
            self.summary_originals,
            probes.Marking(self.workdir, "run", image_ids=self.probe_index, labels=self.test_labels[self.probe_index]),
            writer=self.writers["train"],
        )

    def train(self) -> tuple[int | None, float]:
        """Runs chunks of steps until config.steps or a stop signal; returns (signal or None, seconds)."""
        config = self.config
        first_step, end_step = int(self.step), max(config.steps, int(self.step) + 1)
        iterator = iter(
            self.strategy.distribute_datasets_from_function(
                lambda context: pipeline.train_dataset(
                    self.train_images,
                    self.train_labels,
                    config.batch_size,
                    config.seed,
                    first_step,
                    end_step,
                    config.data.image_size,
                    context,
                    config.data.flip,
                    config.data.translate,
                    self.statistics,
                )
            )
        )
        self.started, self.first_step, self.summary_seconds = time.perf_counter(), first_step, []
        with _StopRequest() as stop:
            while int(self.step) < config.steps and stop.signal is None:
                self.chunk(iterator)
            stopped = stop.signal
        return stopped, time.perf_counter() - self.started

    def chunk(self, iterator) -> None:
        """Trains up to the next boundary, then does what that boundary asks for."""
        config = self.config
        chunk_start, first = time.perf_counter(), int(self.step)
        target = _next_boundary(first, config)
        sums = {k: float(v) for k, v in self.train_steps(iterator, tf.constant(target - first)).items()}
        if not np.isfinite(sums["loss"]) or sums["weights_finite"] != 1.0:
            what = f"loss became {sums['loss']}" if not np.isfinite(sums["loss"]) else "weights overflowed"
            raise FloatingPointError(
                f"{what} between steps {first} and {target}; stopped. The last good checkpoint is "
                f"{self.manager.latest_checkpoint}; lower --config.optimizer.learning_rate"
            )
        self.step.assign(target)
        images_per_second = sums["examples"] / (time.perf_counter() - chunk_start)
        if target == config.steps and config.norm_statistics_images:
            self.recompute_statistics()  # before the last evaluation and checkpoint, so both have them
        self.write_scalars(target, sums, target - first, images_per_second)
        eval_text = ""
        if target % config.eval_every == 0 or target == config.steps:
            accuracy, _ = steps.evaluate(self.eval_step, self.eval_data)
            eval_text = f"  test acc {accuracy:.4f}"
            with self.writers["eval"].as_default(step=target):
                tf.summary.scalar("accuracy", accuracy)
        if target % config.checkpoint_every == 0 or target == config.steps:
            checkpoints.save(self.manager, target)
        if self.chief and (target in config.keep_steps or target == config.steps):
            checkpoints.keep(self.checkpoint, self.checkpoint_dir, target)
        if target % config.log_every == 0 or target == config.steps:
            self.log_progress(target, sums, target - first, eval_text, images_per_second)

    def recompute_statistics(self) -> None:
        """Batch normalization's moving statistics from the first `norm_statistics_images` training images,
        unaugmented and in training batches (`steps.recompute_statistics`)."""
        config = self.config
        # whole batches only (a short one would weigh as much as a full one), of the images there are (at least
        # one batch: the training pipeline refuses fewer)
        count = min(config.norm_statistics_images, len(self.train_images)) // config.batch_size * config.batch_size
        started = time.perf_counter()
        batches = steps.recompute_statistics(
            self.model,
            self.strategy,
            self.strategy.distribute_datasets_from_function(
                lambda context: pipeline.eval_dataset(
                    self.train_images[:count],
                    self.train_labels[:count],
                    config.batch_size,
                    config.data.image_size,
                    context,
                    statistics=self.statistics,
                )
            ),
            self.compute_dtype,
        )
        self.log(
            f"batch normalization's moving statistics recomputed from {batches} batch{'es' * (batches != 1)} of "
            f"{config.batch_size} training images ({time.perf_counter() - started:.1f} s)"
        )

    def write_scalars(self, target: int, sums: dict, count: int, images_per_second: float) -> None:
        with self.writers["train"].as_default(step=target):
            for name in ("loss", "cross_entropy", "weight_penalty"):
                tf.summary.scalar(f"loss/{name}", sums[name] / count)
            tf.summary.scalar("accuracy", sums["correct"] / sums["examples"])
            tf.summary.scalar("learning_rate", optim.current_learning_rate(self.optimizer))
            tf.summary.scalar("images_per_second", images_per_second)
            if target % self.config.summary_every == 0 or target == self.config.steps:
                summary_start = time.perf_counter()
                self.summary.write(target)
                self.summary_seconds.append(time.perf_counter() - summary_start)

    def log_progress(self, target: int, sums: dict, count: int, eval_text: str, images_per_second: float) -> None:
        per_step = (time.perf_counter() - self.started) / max(target - self.first_step, 1)
        left = per_step * (self.config.steps - target)
        self.log(
            f"step {target}/{self.config.steps}  loss {sums['loss'] / count:.2f} "
            f"(ce {sums['cross_entropy'] / count:.2f} + l2 {sums['weight_penalty'] / count:.2f})"
            f"  train acc {sums['correct'] / sums['examples']:.3f}{eval_text}  "
            f"{images_per_second:.0f} img/s  eta {_format_seconds(left)}"
        )

    def finish(self, train_seconds: float) -> dict:
        """Final test accuracy over the whole split, written to metrics.json and the eval events."""
        accuracy, examples = steps.evaluate(self.eval_step, self.eval_data)
        step = int(self.step)
        metrics = {
            "status": "complete",
            "step": step,
            "test_accuracy": accuracy,
            "test_examples": examples,
        }
        tta_text = ""
        if self.config.eval_tta:
            tta_step = steps.make_eval_step(self.model, self.strategy, self.compute_dtype, self.config.eval_tta)
            metrics["test_accuracy_tta"], _ = steps.evaluate(tta_step, self.eval_data)
            metrics["eval_tta"] = self.config.eval_tta
            tta_text = f", {metrics['test_accuracy_tta']:.4f} with test-time augmentation {self.config.eval_tta}"
        metrics.update(
            {
                "precision": self.config.precision,
                "train_seconds_this_session": round(train_seconds, 2),
                "mean_summary_seconds": round(float(np.mean(self.summary_seconds)), 4)
                if self.summary_seconds
                else None,
            }
        )
        if self.chief:
            with self.writers["eval"].as_default(step=step):
                tf.summary.scalar("test_accuracy_final", accuracy)
                if "test_accuracy_tta" in metrics:
                    tf.summary.scalar("test_accuracy_final_tta", metrics["test_accuracy_tta"])
            for writer in self.writers.values():
                writer.flush()
            rundir.write_metrics(self.workdir, metrics)
        self.log(
            f"test accuracy {accuracy:.4f}{tta_text} on {examples} test images (step {step}, "
            f"{self.config.precision}); metrics in {os.path.join(self.workdir, rundir.METRICS_FILE)}"
        )
        return metrics
