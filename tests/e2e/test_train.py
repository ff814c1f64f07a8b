"""End-to-end: the trainer on small synthetic data, resume, interruption and every user error."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.support.builders import ROOT, final_weights, small_config
from vizdeconv.config import speedrun_layers
from vizdeconv.data import sources
from vizdeconv.nn import preprocess
from vizdeconv.nn.convnet import build_model
from vizdeconv.nn.initializers import whitening_kernel
from vizdeconv.runs import rundir
from vizdeconv.training import steps
from vizdeconv.training.loop import train_and_evaluate

pytestmark = pytest.mark.slow  # they train and run train.py


def run_train(*args, timeout=240):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_short_run_writes_a_complete_self_describing_run_folder(cifar_session, tmp_path):
    workdir = str(tmp_path / "run")
    metrics = train_and_evaluate(small_config(cifar_session), workdir, log=lambda *_: None)
    assert metrics["status"] == "complete" and metrics["step"] == 6
    assert metrics["test_examples"] == 64 and 0 <= metrics["test_accuracy"] <= 1
    assert json.load(open(os.path.join(workdir, "metrics.json")))["test_accuracy"] == metrics["test_accuracy"]
    saved = rundir.load_config(workdir)
    assert saved.precision == "float32" and saved.data.data_dir == os.path.abspath(cifar_session)
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-6")
    tags = {}
    for folder in ("train", "eval", ""):
        for file in tf.io.gfile.glob(os.path.join(workdir, folder, "events.*")):
            for event in tf.compat.v1.train.summary_iterator(file):
                for value in event.summary.value:
                    tags.setdefault(value.tag, set()).add(event.step)
    for tag in (
        "loss/loss",
        "loss/cross_entropy",
        "loss/weight_penalty",
        "accuracy",
        "learning_rate",
        "images_per_second",
    ):
        assert tags[tag] == {2, 3, 4, 6}, tag  # every chunk: log and summary boundaries
    assert tags["reconstructions"] == {0, 3, 6} and tags["top_features/conv3"] == {0, 3, 6}
    assert "_hparams_/session_start_info" in tags


def restored_variables(config, workdir) -> dict:
    """{variable name: value} of the network `config` describes, restored from the run's newest checkpoint."""
    model = build_model(config)
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    tf.train.Checkpoint(model=model).read(latest).expect_partial().assert_existing_objects_matched()
    return {f"{index} {variable.name}": variable.numpy() for index, variable in enumerate(model.variables)}


SPEEDRUN_PARTS = {"optimizer.name": "muon", "optimizer.learning_rate": 0.05, "optimizer.lookahead_every": 2,
                  "loss.label_smoothing": 0.2, "data.flip": "alternating"}  # fmt: skip


# configs/speedrun.py's recipe with ReLU, on a narrower network and a small batch: every part the recipe adds
RELU_LAYERS = speedrun_layers(widths=(8, 16, 16), activation="relu", pool_first=False, norm_epsilon=1e-3,
                              whiten_bias_steps=0)  # fmt: skip
SPEEDRUN = {"model.layers": RELU_LAYERS, "data.image_size": 32, "data.translate": 2,
            "data.flip": "alternating", "loss.label_smoothing": 0.2, "optimizer.name": "momentum",
            "optimizer.momentum": 0.85, "optimizer.nesterov": True, "optimizer.learning_rate": 1e-3,
            "optimizer.schedule": "triangle", "optimizer.warmup_steps": 2, "optimizer.decay_factor": 0.07,
            "optimizer.norm_bias_scale": 64.0, "optimizer.lookahead_every": 2, "optimizer.lookahead_alpha": 0.23,
            "optimizer.lookahead_power": 3.0, "eval_tta": 2}  # fmt: skip
# and the recipe itself, every choice of airbench's: GELU after the pooled normalization, a whitening bias
# trained for 3 of the 6 steps (the crash comes after them), the statistics averaged with the weights, the
# data set's statistics
AIRBENCH = {
    **SPEEDRUN,
    "model.layers": speedrun_layers(widths=(8, 16, 16), whiten_bias_steps=3),
    "data.normalize": "dataset",
    "optimizer.lookahead_statistics": True,
    "optimizer.lookahead_every": 3,
}  # fmt: skip  (so that the slow copies differ at the step-4 crash)


@pytest.mark.parametrize(
    "recipe",
    [{}, SPEEDRUN_PARTS, SPEEDRUN, AIRBENCH, {**AIRBENCH, "norm_statistics_images": 16}],
    ids=["reference", "muon_lookahead_smoothing_alternating_flip", "speedrun", "airbench", "airbench_precise_bn"],
)
def test_resume_continues_at_the_right_step_with_identical_weights(cifar_session, tmp_path, recipe):
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    train_and_evaluate(small_config(cifar_session, **recipe), straight, log=lambda *_: None)

    def crash_after_step_4(line):  # the process dies there, after its step-4 checkpoint (the schedules and
        if line.startswith("step 4/"):  # the weight averaging depend on the whole run's length: kept)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(small_config(cifar_session, **recipe), resumed, log=crash_after_step_4)
    lines = []
    train_and_evaluate(small_config(cifar_session, **recipe), resumed, log=lines.append)
    assert any("at step 4" in line for line in lines)
    # every variable of the network (kernels, biases, normalizations), restored into it from each run
    a, b = (restored_variables(small_config(cifar_session, **recipe), workdir) for workdir in (straight, resumed))
    assert a.keys() == b.keys() and len(a) == len(build_model(small_config(cifar_session, **recipe)).variables)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)
    again = []
    train_and_evaluate(small_config(cifar_session, **recipe), resumed, log=again.append)
    assert "already reached step 6" in again[-1]


def test_the_speedrun_recipe_whitens_from_the_training_images_and_reports_both_accuracies(cifar_session, tmp_path):
    workdir = str(tmp_path / "speedrun")
    lines = []
    config = small_config(cifar_session, **SPEEDRUN)
    metrics = train_and_evaluate(config, workdir, log=lines.append)
    assert 0 <= metrics["test_accuracy"] <= 1 and 0 <= metrics["test_accuracy_tta"] <= 1
    assert metrics["eval_tta"] == 2 and "with test-time augmentation 2" in lines[-1]
    train_images, _ = sources.for_config(config.data, "train").read_all()
    expected = whitening_kernel(preprocess.preprocess_eval(train_images[:5000], 32), 2)
    model = build_model(config)
    tf.train.Checkpoint(model=model).read(
        tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    ).expect_partial()
    np.testing.assert_allclose(model.kernels[0].numpy(), expected, rtol=1e-6)
    saved = rundir.load_config(workdir)
    assert saved.data.translate == 2 and saved.optimizer.norm_bias_scale == 64.0


def test_recomputed_statistics_reach_the_final_checkpoint_and_the_reported_accuracy(cifar_session, tmp_path):
    # The same seed with and without the option trains the same weights; the option's run must end on the
    # statistics that the plain run's network gets from the first 20 training images in batches of 8 (16
    # images, 2 batches), unaugmented, and report the accuracy of exactly that network.
    plain, precise = str(tmp_path / "plain"), str(tmp_path / "precise")
    train_and_evaluate(small_config(cifar_session, **AIRBENCH), plain, log=lambda *_: None)
    config = small_config(cifar_session, **AIRBENCH, norm_statistics_images=20)
    lines = []
    metrics = train_and_evaluate(config, precise, log=lines.append)
    assert any("recomputed from 2 batches of 8 training images" in line for line in lines)
    model = build_model(config)
    tf.train.Checkpoint(model=model).read(
        tf.train.latest_checkpoint(os.path.join(plain, "checkpoints"))
    ).expect_partial()
    train_images, train_labels = sources.for_config(config.data, "train").read_all()
    statistics = preprocess.run_statistics(config.data)
    inputs = preprocess.preprocess_eval(train_images[:16], 32, statistics)
    strategy = tf.distribute.get_strategy()
    batches = tf.data.Dataset.from_tensor_slices((inputs, train_labels[:16])).batch(8)
    assert steps.recompute_statistics(model, strategy, batches) == 2
    ours = restored_variables(config, precise)
    theirs = {f"{index} {variable.name}": variable.numpy() for index, variable in enumerate(model.variables)}
    assert any("moving_variance" in name for name in ours)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6, err_msg=name)
    different = [name for name in ours if "moving" in name and not np.allclose(ours[name], restored_variables(
        config, plain)[name], atol=1e-4)]  # fmt: skip
    assert different  # the option changed the statistics
    test_images, test_labels = sources.for_config(config.data, "test").read_all()
    logits = model(preprocess.preprocess_eval(test_images, 32, statistics))
    assert metrics["test_accuracy"] == pytest.approx(np.mean(np.argmax(logits, 1) == test_labels), abs=1e-6)


def test_recomputed_statistics_use_whole_batches_of_the_training_images_there_are(cifar_session, tmp_path):
    # 13 training images (data.limit) and norm_statistics_images 1000 in batches of 8: one batch, the first 8
    # (a second of 5 would weigh as much as the first)
    workdir = str(tmp_path / "run")
    config = small_config(cifar_session, **AIRBENCH, norm_statistics_images=1000, **{"data.limit": 13})
    lines = []
    train_and_evaluate(config, workdir, log=lines.append)
    ours = restored_variables(config, workdir)
    model = build_model(config)
    tf.train.Checkpoint(model=model).read(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")))
    assert any("recomputed from 1 batch of 8 training images" in line for line in lines)
    # recomputing from the same first 8 images on the run's final weights changes nothing
    train_images, train_labels = sources.for_config(config.data, "train").read_all()
    inputs = preprocess.preprocess_eval(train_images[:8], 32, preprocess.run_statistics(config.data))
    batches = tf.data.Dataset.from_tensor_slices((inputs, train_labels[:8])).batch(8)
    assert steps.recompute_statistics(model, tf.distribute.get_strategy(), batches) == 1
    for index, variable in enumerate(model.variables):
        name = f"{index} {variable.name}"
        np.testing.assert_allclose(ours[name], variable.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_diverging_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(cifar_session, tmp_path):
    workdir = str(tmp_path / "nan")
    result = run_train(
        "--config",
        "configs/smoke.py",
        "--data_dir",
        cifar_session,
        "--workdir",
        workdir,
        "--config.precision=float32",
        "--config.optimizer.schedule=step",
        "--config.optimizer.decay_every=3",
        "--config.optimizer.decay_factor=1e30",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "loss became" in result.stderr and "Traceback" not in result.stderr
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    assert latest.endswith("ckpt-4")
    assert all(np.isfinite(w).all() for w in final_weights(workdir).values())


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_saves_a_checkpoint_and_the_same_command_resumes(cifar_session, tmp_path, stop_signal):
    workdir = str(tmp_path / "term")
    args = [
        sys.executable,
        os.path.join(ROOT, "train.py"),
        "--config",
        "configs/smoke.py",
        "--data_dir",
        cifar_session,
        "--workdir",
        workdir,
        "--steps",
        "100000",
        "--config.log_every=1",
        "--config.checkpoint_every=100000",
        "--config.eval_every=100000",
        "--config.summary_every=100000",
    ]
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    for line in process.stdout:
        if line.startswith("step 5/"):
            break
    process.send_signal(stop_signal)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 128 + stop_signal, output[-2000:]
    step = int(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).rsplit("-", 1)[1])
    assert step >= 5 and "stopped by signal" in output and "Traceback" not in output
    # steps is the one field that may change: the same command with a nearer end resumes and ends.
    result = run_train(*args[2 : args.index("--steps")], "--steps", str(step + 2), *args[args.index("--steps") + 2 :])
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"at step {step}" in result.stdout and f"step {step + 2}/{step + 2}" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.nope=1"], "unknown config field"),
        (["--steps", "0"], "--steps must be a positive"),
        (["--steps", "-5"], "--steps must be a positive"),
        (["--config", "configs/nothere.py"], "cannot load config file"),
        (["--config.precision=float16"], "precision must be one of"),
        (["--data_dir", "/no/such/place"], "does not exist"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(args, message, cifar_session, tmp_path):
    base = ["--config", "configs/smoke.py", "--data_dir", cifar_session, "--workdir", str(tmp_path / "r")]
    result = run_train(*base, *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len([l for l in result.stderr.splitlines() if l.startswith("train.py: error")]) == 1
    assert not os.path.exists(tmp_path / "r" / "checkpoints")


@pytest.mark.parametrize("override, message", [
    ("--config.nope=1", "unknown config field: 'nope'"),
    ("--config.optimizer.learning_rat=0.1", """'learning_rat'; Did you mean "learning_rate" instead"""),
])  # fmt: skip
def test_a_mistyped_field_of_the_default_config_is_one_line(override, message, tmp_path):
    # README's `python train.py --steps 15000 ...`: no --config, so the override meets the default config file
    result = run_train(override, "--workdir", str(tmp_path / "r"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("train.py: error: "), result.stderr
    assert message in lines[0] and not os.path.exists(tmp_path / "r")


def test_a_folder_of_another_config_or_unwritable_logdir_is_refused_and_left_intact(cifar_session, tmp_path):
    workdir = tmp_path / "owned"
    train_and_evaluate(small_config(cifar_session, steps=2), str(workdir), log=lambda *_: None)
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    result = run_train(
        "--config", "configs/smoke.py", "--data_dir", cifar_session, "--workdir", str(workdir), "--config.batch_size=4"
    )
    assert result.returncode == 2 and "different config (batch_size" in result.stderr
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_train("--config", "configs/smoke.py", "--data_dir", cifar_session, "--logdir", str(blocker))
    assert result.returncode == 2 and "cannot create run folder" in result.stderr
    assert blocker.read_text() == "not a folder"


def test_atrous_variant_trains_and_reconstructs(cifar_session, tmp_path):
    from configs import atrous

    config = small_config(cifar_session)
    config.model.layers = atrous.get_config().model.layers
    workdir = str(tmp_path / "atrous")
    metrics = train_and_evaluate(config, workdir, log=lambda *_: None)
    assert metrics["status"] == "complete"
    weights = final_weights(workdir)
    assert weights["model/kernels/2/.ATTRIBUTES/VARIABLE_VALUE"].shape == (5, 5, 64, 10)
    steps = set()
    for file in tf.io.gfile.glob(os.path.join(workdir, "train", "events.*")):
        steps |= {
            e.step
            for e in tf.compat.v1.train.summary_iterator(file)
            if any(v.tag == "reconstructions" for v in e.summary.value)
        }
    assert steps == {0, 3, 6}
