"""The benchmark command's JSON, the AlexNet-FCN shapes, and the analytic FLOP counts."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from configs import default
from tests.support.commands import in_process
from vizdeconv import bench
from vizdeconv.nn.alexnet import AlexNetFCN
from vizdeconv.nn.convnet import build_model


def test_alexnet_fcn_layer_shapes_are_printed_and_right():
    lines = []
    model = AlexNetFCN(log=lines.append)
    expected = {
        "conv1": (115, 87, 64),
        "pool1": (57, 43, 64),
        "conv2": (57, 43, 192),
        "pool2": (28, 21, 192),
        "conv3": (28, 21, 384),
        "conv4": (28, 21, 256),
        "conv5": (28, 21, 256),
        "pool5": (13, 10, 256),
        "conv6": (13, 10, 1),
        "deconv1": (130, 100, 1),
        "deconv2": (260, 200, 1),
    }
    assert {name: model.shapes[name] for name in expected} == expected
    assert lines[0].split() == ["conv1", "115x87x64"] and lines[-1].split() == ["deconv2", "260x200x1"]
    output = model(tf.random.normal([1, 460, 345, 3]))
    assert output.shape == (1, 260, 200, 1) and np.isfinite(output.numpy()).all()


def test_cifar_flop_count_matches_hand_count():
    model = build_model(default.get_config())
    by_hand = 2 * (24 * 24 * 64 * 25 * 3 + 12 * 12 * 64 * 25 * 64 + 6 * 6 * 10 * 25 * 64)
    assert bench.conv_flops(model) == by_hand
    # Projecting conv1, conv2, conv3 walks 1, 2 and 3 layers down, after one forward pass.
    conv1, conv2 = 2 * 24 * 24 * 64 * 25 * 3, 2 * 12 * 12 * 64 * 25 * 64
    assert bench.reconstruct_flops(model) == by_hand + conv1 + (conv1 + conv2) + by_hand


@pytest.mark.slow
def test_bench_command_writes_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vizdeconv.bench",
            "--network",
            "cifar",
            "--batch_size",
            "4",
            "--num_batches",
            "10",
            "--precision",
            "float32",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "step 10, duration = " in result.stdout
    assert "Forward across 10 steps," in result.stdout and "Forward-backward across 10 steps," in result.stdout
    report = json.loads(out.read_text())
    assert (report["network"], report["batch_size"], report["precision"]) == ("cifar", 4, "float32")
    from vizdeconv.hardware import precision

    assert report["machine"]["cpu"] == precision.cpu_model() and report["machine"]["cpu"] in result.stdout
    assert report["machine"]["bf16_path"] in result.stdout  # the header names the bfloat16 path
    assert [r["phase"] for r in report["results"]] == ["forward", "forward_backward"]
    for record in report["results"]:
        assert {"phase", "num_batches", "mean_s", "sd_s", "images_per_s", "gflop_per_s"} <= set(record)
        assert 0 < record["mean_s"] < 5 and record["num_batches"] == 10


def test_timing_records_measure_the_wall_clock_and_derive_rates_from_it():
    lines = []
    # A step that takes 20 ms of wall time: the timer must see 20 ms, not the definition of a rate.
    record = bench.time_phase("sleep", lambda: time.sleep(0.02), 5, 4, 1e9, log=lines.append)
    assert 0.019 < record["mean_s"] < 0.03 and record["num_batches"] == 5
    # Hand arithmetic: 4 images in 0.02 s are 200 images/s; 1 GFLOP per image is 200 GFLOP/s.
    assert abs(record["images_per_s"] - 4 / record["mean_s"]) < 1e-6 and 150 < record["images_per_s"] < 210
    assert 150 < record["gflop_per_s"] < 210
    fixed = bench.timing_record("fixed", [0.1, 0.3], 4, 1e9, log=lines.append)
    assert [fixed["mean_s"], fixed["images_per_s"], fixed["gflop_per_s"]] == pytest.approx([0.2, 20.0, 20.0])
    assert any("across 2 steps" in line for line in lines)


def test_reconstruct_and_train_step_phases_run():
    lines = []
    report = bench.benchmark("cifar", 4, 10, "float32", "reconstruct", log=lines.append)
    assert [r.get("variant") for r in report["results"]] == ["engine"]
    record = report["results"][0]
    assert record["phase"] == "reconstruct" and record["num_batches"] == 10
    report = bench.benchmark("cifar", 4, 10, "float32", "train_step", with_data=True, log=lines.append)
    assert report["results"][0]["variant"] == "with_data" and report["results"][0]["mean_s"] > 0


def test_bench_errors_are_one_line(tmp_path):
    for args, message in (
        (["--network", "alexnet_fcn", "--what", "reconstruct", "--num_batches", "1"], "supports --what forward"),
        (["--what", "forward", "--baseline", "keras"], "use --what train_step"),
        (["--json", str(tmp_path / "no" / "such.json")], "does not exist"),
    ):
        code, _, err = in_process("bench", *args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, (args, err)


@pytest.mark.slow
def test_keras_baseline_trains_the_same_objective_and_is_timed(tmp_path):
    import keras
    import tensorflow as tf

    from configs import default
    from vizdeconv.nn.convnet import build_model, to_keras
    from vizdeconv.training import losses

    config = default.get_config()
    model = build_model(config)
    twin = to_keras(model, weight_decay=config.loss.weight_decay)
    images = tf.random.stateless_normal([4, 24, 24, 3], seed=[1, 2])
    labels = tf.constant([0, 3, 9, 3])
    # Keras adds the regularizers to the summed cross-entropy: the trainer's objective, term by term.
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")(
        labels, twin(images)
    ) + tf.add_n(twin.losses)
    ours = losses.objective(model(images), labels, model.kernels, "sum", config.loss.weight_decay)["loss"]
    np.testing.assert_allclose(float(keras_loss), float(ours), rtol=1e-5)

    out = tmp_path / "bench.json"
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vizdeconv.bench",
            "--what",
            "train_step",
            "--batch_size",
            "8",
            "--num_batches",
            "3",
            "--steps_per_call",
            "2",
            "--precision",
            "float32",
            "--baseline",
            "keras",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [r.get("variant") for r in report["results"]] == ["in_memory_batch", "keras_fit"]
    keras_record = report["results"][1]
    assert keras_record["num_batches"] == 6
    # The timed steps of both fit inside the command's own wall time (a timer that counted wrongly would not).
    assert 0 < 6 * keras_record["mean_s"] + 6 * report["results"][0]["mean_s"] < elapsed
    assert "trainer step / keras model.fit step:" in result.stdout


def test_hardware_kind_and_bfloat16_path_from_cpu_flags(tmp_path):
    from vizdeconv.hardware import precision

    def describe(flags):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: {flags}\n")
        return precision.hardware(str(path))

    amx = describe("fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile")
    assert (amx["cpu"], amx["cpu_kind"]) == ("Test CPU 9000", "AMX")
    assert describe("avx2 avx512f avx512_bf16")["cpu_kind"] == "AVX512-BF16"
    assert describe("avx2 avx512f")["cpu_kind"] == "AVX-512"
    plain = describe("fpu sse2 avx2 fma")
    assert plain["cpu_kind"] == "AVX2" and "float32" in plain["bf16_path"]
    assert describe("fpu sse2")["cpu_kind"] == "other"
