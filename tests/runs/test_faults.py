"""Fault injection: SIGKILL at random moments, damaged checkpoints, a full disk, two writers at once,
damaged run folders. Each ends in a clean resume or a one-line error, never a damaged earlier run."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.support.builders import ROOT, final_weights, small_config
from vizdeconv import cli
from vizdeconv.errors import WriteError
from vizdeconv.runs import checkpoints, rundir
from vizdeconv.training.loop import train_and_evaluate

pytestmark = pytest.mark.slow  # they train, kill and damage runs

QUIET = dict(log=lambda *_: None)


def event_steps(folder):
    """(tag, step) of every summary in a folder's event files, with repeats."""
    seen = []
    for path in tf.io.gfile.glob(os.path.join(folder, "events.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            seen += [(value.tag, event.step) for value in event.summary.value]
    return seen


def train_command(workdir, data_dir, steps):
    return [
        sys.executable,
        os.path.join(ROOT, "train.py"),
        "--config",
        os.path.join(ROOT, "configs", "smoke.py"),
        "--workdir",
        workdir,
        "--data_dir",
        data_dir,
        "--steps",
        str(steps),
        "--config.precision=float32",
        "--config.eval_batch_size=32",
        "--config.checkpoint_every=4",
        "--config.log_every=1",
        "--config.eval_every=8",
        "--config.summary_every=4",
        "--config.keep_checkpoints=2",
    ]


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(cifar_session, tmp_path):
    rng = random.Random(1234)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    steps, kills = 48, 0
    killed = str(tmp_path / "killed")
    while kills < 3:
        process = subprocess.Popen(
            train_command(killed, cifar_session, steps),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wanted = rng.randint(1, 4)  # progress lines to wait for, then a random pause
        seen = 0
        for line in process.stdout:
            seen += line.startswith("step ")
            if seen >= wanted or "test accuracy" in line:
                break
        time.sleep(rng.uniform(0.0, 0.4))
        finished = process.poll() is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not finished, "the run ended before it could be killed; raise `steps`"
        kills += 1
    resumed = subprocess.run(
        train_command(killed, cifar_session, steps), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "taking over the lock" in resumed.stdout  # the last kill left its lock behind
    straight = str(tmp_path / "straight")
    once = subprocess.run(
        train_command(straight, cifar_session, steps), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert once.returncode == 0, once.stderr[-2000:]
    a, b = final_weights(killed), final_weights(straight)
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for folder in ("train", "eval"):  # each summary step at most once, as TensorBoard will draw it
        seen = event_steps(os.path.join(killed, folder))
        assert len(seen) == len(set(seen)), folder
        assert set(seen) == set(event_steps(os.path.join(straight, folder))), folder
    assert not os.path.exists(os.path.join(killed, ".lock"))


def test_second_trainer_on_a_folder_in_use_is_refused(cifar_session, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    workdir = str(tmp_path / "shared")
    # Long enough that the winner still holds the folder when the loser asks for it; no pictures, which
    # this test does not look at. Once the loser is refused, the winner is stopped: its run is not the point.
    command = [*train_command(workdir, cifar_session, 400), "--config.summary_every=400"]
    both = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    deadline = time.monotonic() + 600
    while all(p.poll() is None for p in both) and time.monotonic() < deadline:
        time.sleep(0.2)
    loser = next(p for p in both if p.poll() is not None)
    winner = both[1 - both.index(loser)]
    _, loser_err = loser.communicate()
    assert loser.returncode == 2, loser_err[-500:]
    for line in winner.stdout:  # a training step: it holds the folder, has its writers and its stop handler
        if line.startswith("step "):
            break
    winner.send_signal(signal.SIGTERM)
    winner_out, winner_err = winner.communicate(timeout=300)
    assert winner.returncode in (0, 128 + signal.SIGTERM), winner_err[-500:]
    assert f"is in use by process {winner.pid} on" in loser_err and "Traceback" not in loser_err
    assert len(tf.io.gfile.glob(os.path.join(workdir, "train", "events.*"))) == 1


def test_damaged_newest_checkpoint_is_skipped_and_all_damaged_is_an_error(cifar_session, tmp_path):
    run = str(tmp_path / "run")
    train_and_evaluate(small_config(cifar_session, checkpoint_every=2, keep_checkpoints=3), run, **QUIET)
    assert [os.path.basename(p) for p in checkpoints.candidates(os.path.join(run, "checkpoints"))] == [
        "ckpt-6",
        "ckpt-4",
        "ckpt-2",
    ]

    def truncate(prefix):
        data = prefix + ".data-00000-of-00001"
        with open(data, "r+b") as handle:
            handle.truncate(os.path.getsize(data) // 2)

    def garble_index(prefix):
        with open(prefix + ".index", "r+b") as handle:
            handle.seek(0)
            handle.write(b"\xff" * 64)

    def drop_shard(prefix):
        os.remove(prefix + ".data-00000-of-00001")

    for damage in (truncate, garble_index, drop_shard):
        copy = str(tmp_path / damage.__name__)
        shutil.copytree(run, copy)
        damage(os.path.join(copy, "checkpoints", "ckpt-6"))
        lines = []
        metrics = train_and_evaluate(
            small_config(cifar_session, steps=8, checkpoint_every=2, keep_checkpoints=3), copy, log=lines.append
        )
        assert metrics["status"] == "complete" and metrics["step"] == 8, damage.__name__
        warnings = [line for line in lines if line.startswith("warning: skipping checkpoint")]
        assert len(warnings) == 1 and "ckpt-6" in warnings[0], (damage.__name__, lines[:5])
        assert any("resuming from" in line and line.split()[2].endswith("ckpt-4") for line in lines)
    # Every checkpoint damaged: the explorer, export and trainer say so in one line.
    for prefix in checkpoints.candidates(os.path.join(run, "checkpoints")):
        truncate(prefix)
    assert cli.run(cli.command("export"), ["--run", run, "--out", str(tmp_path / "m.keras")], "export") == 2
    with pytest.raises(ValueError, match="no intact checkpoint"):
        train_and_evaluate(small_config(cifar_session, steps=8, checkpoint_every=2, keep_checkpoints=3), run, **QUIET)


@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MB tmpfs (skipped where this process may not mount one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.strip() or 'mount failed'})")
    yield str(mount)
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_is_one_line_keeps_earlier_checkpoints_and_resumes(cifar_session, small_disk):
    filler = os.path.join(small_disk, "filler")
    with open(filler, "wb") as handle:  # leaves room for about two checkpoints (1.5 MB each)
        handle.write(b"\0" * (4 * 1024 * 1024 + 512 * 1024))
    run = os.path.join(small_disk, "run")
    config = small_config(cifar_session, steps=12, checkpoint_every=2, keep_checkpoints=2)
    with pytest.raises(WriteError, match="No space left on device") as caught:
        train_and_evaluate(config, run, **QUIET)
    assert "\n" not in str(caught.value) and "run the same command again" in str(caught.value)
    folder = os.path.join(run, "checkpoints")
    assert not [name for name in os.listdir(folder) if "_temp" in name]
    kept = checkpoints.candidates(folder)
    assert kept, "at least one checkpoint fitted"
    for prefix in kept:
        checkpoints.verify(prefix)
    assert not os.path.exists(os.path.join(run, ".lock"))
    os.remove(filler)
    lines = []
    metrics = train_and_evaluate(config, run, log=lines.append)
    assert metrics["status"] == "complete" and metrics["step"] == 12
    assert any(line.startswith("resuming from") for line in lines)


def test_refused_metrics_write_removes_its_temporary_file(tmp_path, monkeypatch):
    import builtins
    import errno

    real_open = builtins.open

    def full_disk_open(path, mode="r", *args, **kwargs):
        if str(path).endswith(".tmp") and "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    rundir.write_metrics(str(tmp_path), {"step": 1})
    monkeypatch.setattr(builtins, "open", full_disk_open)
    with pytest.raises(WriteError, match=r"metrics.json \(No space left on device\)"):
        rundir.write_metrics(str(tmp_path), {"step": 2})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["metrics.json"] and rundir.read_metrics(str(tmp_path)) == {"step": 1}


def test_a_ctrl_c_halfway_through_a_write_leaves_the_earlier_file_and_no_temporary_one(tmp_path, monkeypatch):
    import keras

    from vizdeconv.runs import subject

    def interrupted(*args, **kwargs):
        if args and hasattr(args[-1], "write"):
            args[-1].write('{"step": ')  # half of the new file
        raise KeyboardInterrupt

    rundir.write_metrics(str(tmp_path), {"step": 1})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = str(tmp_path / "model.keras")
    subject.save_with_settings(model, path, "deconvnet", "relu")
    with monkeypatch.context() as patch:
        patch.setattr(rundir.json, "dump", lambda payload, handle, **kw: interrupted(payload, handle))
        patch.setattr(subject, "record_settings", interrupted)
        with pytest.raises(KeyboardInterrupt):
            rundir.write_metrics(str(tmp_path), {"step": 2})
        with pytest.raises(KeyboardInterrupt):
            subject.save_with_settings(model, path, "guided", "all")
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "model.keras"]
    assert rundir.read_metrics(str(tmp_path)) == {"step": 1}
    assert subject.recorded_settings(path)["mode"] == "deconvnet"


def test_stale_lock_of_a_dead_process_is_taken_over_and_a_live_one_refuses(tmp_path):
    import socket

    from vizdeconv.errors import RunInUse
    from vizdeconv.runs.lock import LOCK_FILE, RunLock

    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / LOCK_FILE
    path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    lines = []
    with RunLock(str(tmp_path), lines.append):
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(RunInUse, match=f"in use by process {os.getpid()} on {socket.gethostname()}"):
            RunLock(str(tmp_path)).acquire()
    assert lines == [
        f"notice: taking over the lock of process {dead.pid} on {socket.gethostname()}, which is no longer running"
    ]
    assert not path.exists()
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere"}))  # another host: never taken over
    with pytest.raises(RunInUse, match="in use by process 1 on elsewhere"):
        RunLock(str(tmp_path)).acquire()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda run: open(os.path.join(run, "config.json"), "w").write("{not json"), "is not valid JSON"),
        (lambda run: _edit_config(run, lambda c: c.update(colour="blue")), "unknown field 'colour'"),
        (lambda run: _edit_config(run, lambda c: c["data"].pop("image_size")), "lacks field 'data.image_size'"),
        (
            lambda run: rundir.write_json(os.path.join(run, "version.json"), {"vizdeconv": "7.0", "run_format": 7}),
            "written by vizdeconv 7.0",
        ),
        (lambda run: open(os.path.join(run, "metrics.json"), "w").write("[1, 2"), "metrics.json is garbled"),
        (
            lambda run: shutil.rmtree(os.path.join(run, "checkpoints")) or os.mkdir(os.path.join(run, "checkpoints")),
            "has no checkpoint yet",
        ),
    ],
)
def test_damaged_run_folders_give_one_line_in_every_command(
    cifar_session, tmp_path, damage, message, trained_smoke_run, capsys
):
    run = str(tmp_path / "run")
    shutil.copytree(trained_smoke_run, run)
    damage(run)
    outcomes = {}
    for name, main, args in (
        ("explore", cli.command("explore"), ["--run", run, "--limit", "16"]),
        ("export", cli.command("export"), ["--run", run, "--out", str(tmp_path / "m.keras")]),
    ):
        capsys.readouterr()
        code = cli.run(main, args, name)
        outcomes[name] = (code, capsys.readouterr().err)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    trainer = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "train.py"),
            "--config",
            os.path.join(ROOT, "configs", "smoke.py"),
            "--workdir",
            run,
            "--data_dir",
            cifar_session,
            "--config.precision=float32",
            "--config.eval_batch_size=32",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    outcomes["train.py"] = (trainer.returncode, trainer.stderr)  # last: it may write the folder
    for name, (code, stderr) in outcomes.items():
        if name == "train.py" and message == "has no checkpoint yet":
            assert code == 0, stderr[-1000:]  # a folder without checkpoints simply starts again
            continue
        if name != "train.py" and message == "metrics.json is garbled":
            assert code == 0, stderr[-1000:]  # only the trainer reads the metrics back
            continue
        lines = [line for line in stderr.strip().splitlines() if "error:" in line]
        assert code == 2 and len(lines) == 1 and message in lines[0], (name, stderr[-1500:])
        assert "Traceback" not in stderr, name


def _edit_config(run, change):
    path = os.path.join(run, "config.json")
    config = json.load(open(path))
    change(config)
    json.dump(config, open(path, "w"))


def test_kept_checkpoints_survive_resume_and_rolling_pruning(cifar_session, tmp_path):
    run = str(tmp_path / "run")
    config = small_config(cifar_session, steps=5, checkpoint_every=1, keep_checkpoints=1, keep_steps=(2, 4))
    train_and_evaluate(config, run, **QUIET)
    folder = os.path.join(run, "checkpoints")
    assert [os.path.basename(p) for p in checkpoints.candidates(folder)] == ["ckpt-5"]  # pruned to 1
    assert [step for step, _ in checkpoints.kept(folder)] == [2, 4, 5]
    config.steps = 9
    config.keep_steps = (2, 4, 7)
    train_and_evaluate(config, run, **QUIET)  # resumed at 5: keeps 7 and the new last step
    assert [step for step, _ in checkpoints.kept(folder)] == [2, 4, 5, 7, 9]
    for _, prefix in checkpoints.kept(folder):
        checkpoints.verify(prefix)


@pytest.mark.parametrize("site", ["summary", "checkpoint", "explorer"])
def test_injected_enospc_at_each_write_site_is_one_line(cifar_session, trained_smoke_run, tmp_path, monkeypatch, site):
    import errno

    from vizdeconv import explore
    from vizdeconv.viz import pictures

    def refuse(*args, **kwargs):
        if site == "summary":
            raise tf.errors.ResourceExhaustedError(None, None, "events file: No space left on device")
        raise OSError(errno.ENOSPC, "No space left on device")

    run = str(tmp_path / "run")
    shutil.copytree(trained_smoke_run, run)
    before = checkpoints.candidates(os.path.join(run, "checkpoints"))
    if site == "explorer":
        # the explorer's module first: imported while pictures.write_png is patched, it would keep the patch
        monkeypatch.setattr("vizdeconv.explore.render.write_png", refuse)
        monkeypatch.setattr(pictures, "write_png", refuse)
        with pytest.raises(WriteError, match=r"could not write the explorer's output \(No space left"):
            explore.explore(explore.ExploreOptions(run=run, layers=["conv1"], limit=16, top_k=2), log=lambda *_: None)
    else:
        if site == "summary":
            monkeypatch.setattr("vizdeconv.viz.summaries.ReconstructionSummary.write", refuse)
        else:
            monkeypatch.setattr("tensorflow.train.CheckpointManager.save", refuse)
        with pytest.raises(WriteError, match=r"No space left on device.*run the same command again") as error:
            train_and_evaluate(small_config(cifar_session, steps=9), run, **QUIET)
        assert "\n" not in str(error.value)
    assert not os.path.exists(os.path.join(run, ".lock"))
    after = checkpoints.candidates(os.path.join(run, "checkpoints"))
    assert before[0] in after  # the newest earlier one survives (older ones only by rolling pruning)
    for prefix in after:
        checkpoints.verify(prefix)
