"""train_and_evaluate(config, workdir): the training loop, checkpoints, summaries and final test accuracy."""
import os
import signal
import tempfile
import threading
import time

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from vizdeconv.deconv.deconvnet import Deconvnet
from vizdeconv.errors import WriteError, is_write_failure, reason
from vizdeconv.nn.convnet import build_model
from vizdeconv.training import checkpoints, data, distribute, optim, precision, rundir, steps
from vizdeconv.training import config as config_lib
from vizdeconv.training.lock import RunLock
from vizdeconv.viz.plugin import metadata
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
        log(f"run already reached step {done} of {config.steps}: test accuracy "
            f"{previous.get('test_accuracy', float('nan')):.4f}")
        return previous
    if not chief:
        return _train(config, workdir, strategy, chief, requested, log)
    rundir.create(workdir)
    with RunLock(workdir, log):  # the chief alone writes; a second writer is refused here
        try:
            return _train(config, workdir, strategy, chief, requested, log)
        except (OSError, tf.errors.OpError) as error:
            if isinstance(error, WriteError) or not is_write_failure(error):
                raise
            checkpoints.remove_debris(checkpoint_dir)
            raise WriteError(f"could not write to {workdir} ({reason(error)}); the newest checkpoint "
                             f"is step {checkpoints.newest_number(checkpoint_dir)}; free space and run "
                             "the same command again to resume") from None


def _train(config, workdir: str, strategy, chief: bool, requested: str, log) -> dict:
    """The body of `train_and_evaluate`, run while the chief holds the run folder."""
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    train_images, train_labels = data.load_split(config.data, "train")
    test_images, test_labels = data.load_split(config.data, "test")
    resumed = rundir.prepare(config, workdir) if chief else True
    compute_dtype = precision.compute_dtype(config.precision)
    why = "chosen for this hardware" if requested == "auto" else "as configured"
    log(f"precision: {config.precision} ({why}), replicas: {strategy.num_replicas_in_sync}, "
        f"run folder: {workdir}")

    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")  # host-side, not mirrored
    with strategy.scope():
        model = build_model(config)
        optimizer = optim.make_optimizer(config.optimizer, config.steps)
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    # Every worker saves (saving may need all of them); only the chief's copy is kept.
    manager = tf.train.CheckpointManager(
        checkpoint, checkpoint_dir if chief else tempfile.mkdtemp(prefix="vizdeconv-worker-"),
        max_to_keep=config.keep_checkpoints)
    if chief:
        checkpoints.remove_debris(checkpoint_dir)
    latest = checkpoints.restore_newest(checkpoint, checkpoint_dir, log)
    if latest:
        log(f"resuming from {latest} at step {int(step)}")
    if chief and resumed:
        for name in ("train", "eval"):  # steps after the checkpoint will be written again
            rundir.drop_events_after(os.path.join(workdir, name), int(step))

    eval_step = steps.make_eval_step(model, strategy, compute_dtype)
    eval_data = strategy.distribute_datasets_from_function(lambda context: data.eval_dataset(
        test_images, test_labels, config.eval_batch_size, config.data.image_size, context))
    writers = {name: tf.summary.create_file_writer(os.path.join(workdir, name)) if chief
               else tf.summary.create_noop_writer() for name in ("train", "eval")}
    probe_index = np.random.default_rng(config.seed).choice(
        len(test_images), min(config.reconstruction.probes, len(test_images)), replace=False)
    probes = test_images[np.sort(probe_index)]
    summary_inputs = data.preprocess_eval(probes, config.data.image_size)
    summary_originals = data.central_crop(probes, config.data.image_size).astype(np.float32) / 255.0
    summary = ReconstructionSummary(
        Deconvnet(model, config.reconstruction.mode, compute_dtype=compute_dtype),
        summary_inputs, summary_originals,
        top_k=config.reconstruction.top_k, display_scale=config.reconstruction.display_scale,
        clip_percentile=config.reconstruction.clip_percentile)
    if not resumed and chief:
        # At the run folder's root, so the HParams dashboard finds train/ and eval/ metrics below it.
        with tf.summary.create_file_writer(workdir).as_default():
            hparams_api.hparams(_flat_hparams(config), trial_id=config.name)
        with writers["train"].as_default():
            summary.write(0)
        metadata.write_probes(os.path.join(workdir, "train"), summary_inputs, summary_originals,
                              root=workdir, kind="run", image_ids=np.sort(probe_index),
                              labels=test_labels[np.sort(probe_index)], writer=writers["train"])

    train_steps = steps.make_train_steps(model, optimizer, strategy, config.loss, config.batch_size,
                                         compute_dtype)
    first_step, end_step = int(step), max(config.steps, int(step) + 1)
    iterator = iter(strategy.distribute_datasets_from_function(lambda context: data.train_dataset(
        train_images, train_labels, config.batch_size, config.seed, first_step, end_step,
        config.data.image_size, context)))
    started, summary_seconds, stopped = time.perf_counter(), [], None
    with _StopRequest() as stop:
        while int(step) < config.steps and stop.signal is None:
            chunk_start, first = time.perf_counter(), int(step)
            target = _next_boundary(first, config)
            sums = {k: float(v) for k, v in train_steps(iterator, tf.constant(target - first)).items()}
            if not np.isfinite(sums["loss"]) or sums["weights_finite"] != 1.0:
                what = (f"loss became {sums['loss']}" if not np.isfinite(sums["loss"])
                        else "weights overflowed")
                raise FloatingPointError(
                    f"{what} between steps {first} and {target}; stopped. The "
                    f"last good checkpoint is {manager.latest_checkpoint}; lower "
                    "--config.optimizer.learning_rate")
            step.assign(target)
            elapsed = time.perf_counter() - chunk_start
            images_per_second = sums["examples"] / elapsed
            count = target - first
            with writers["train"].as_default(step=target):
                for name in ("loss", "cross_entropy", "weight_penalty"):
                    tf.summary.scalar(f"loss/{name}", sums[name] / count)
                tf.summary.scalar("accuracy", sums["correct"] / sums["examples"])
                tf.summary.scalar("learning_rate", optim.current_learning_rate(optimizer))
                tf.summary.scalar("images_per_second", images_per_second)
                if target % config.summary_every == 0 or target == config.steps:
                    summary_start = time.perf_counter()
                    summary.write(target)
                    summary_seconds.append(time.perf_counter() - summary_start)
            eval_text = ""
            if target % config.eval_every == 0 or target == config.steps:
                accuracy, _ = steps.evaluate(eval_step, eval_data)
                eval_text = f"  test acc {accuracy:.4f}"
                with writers["eval"].as_default(step=target):
                    tf.summary.scalar("accuracy", accuracy)
            if target % config.checkpoint_every == 0 or target == config.steps:
                checkpoints.save(manager, target)
            if chief and (target in config.keep_steps or target == config.steps):
                checkpoints.keep(checkpoint, checkpoint_dir, target)
            if target % config.log_every == 0 or target == config.steps:
                per_step = (time.perf_counter() - started) / max(target - first_step, 1)
                left = per_step * (config.steps - target)
                log(f"step {target}/{config.steps}  loss {sums['loss'] / count:.2f} "
                    f"(ce {sums['cross_entropy'] / count:.2f} + l2 {sums['weight_penalty'] / count:.2f})"
                    f"  train acc {sums['correct'] / sums['examples']:.3f}{eval_text}  "
                    f"{images_per_second:.0f} img/s  eta {_format_seconds(left)}")
        stopped = stop.signal

    train_seconds = time.perf_counter() - started
    if stopped is not None:
        checkpoints.save(manager, int(step))
        log(f"stopped by signal {stopped} at step {int(step)}; checkpoint saved, run the same "
            "command again to resume")
        return {"status": "interrupted", "step": int(step), "signal": int(stopped)}

    accuracy, examples = steps.evaluate(eval_step, eval_data)
    metrics = {"status": "complete", "step": int(step), "test_accuracy": accuracy,
               "test_examples": examples, "precision": config.precision,
               "train_seconds_this_session": round(train_seconds, 2),
               "mean_summary_seconds": round(float(np.mean(summary_seconds)), 4) if summary_seconds else None}
    if chief:
        with writers["eval"].as_default(step=int(step)):
            tf.summary.scalar("test_accuracy_final", accuracy)
        for writer in writers.values():
            writer.flush()
        rundir.write_metrics(workdir, metrics)
    log(f"test accuracy {accuracy:.4f} on {examples} test images (step {int(step)}, "
        f"{config.precision}); metrics in {os.path.join(workdir, rundir.METRICS_FILE)}")
    return metrics
