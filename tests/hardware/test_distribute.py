"""tf.distribute: two mirrored logical CPUs train, resume and scan exactly like one device."""

import json
import os
import subprocess
import sys

import pytest

from vizdeconv.hardware import distribute

pytestmark = pytest.mark.slow  # several devices and worker processes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_two_replicas_match_one_device_in_training_resuming_and_top_k(cifar_session, tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "support", "distributed_cases.py"), cifar_session, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["replicas"] == 2
    assert figures["replicas_vs_single"] < 1e-5, figures
    assert figures["two_then_one"] < 1e-5 and figures["one_then_two"] < 1e-5, figures
    assert figures["muon_lookahead"] < 1e-5, figures
    assert figures["accuracy"][0] == pytest.approx(figures["accuracy"][1])
    assert figures["topk_equal"]
    assert figures["gelu_mirrored"] == "complete"
    assert figures["statistics_batches"] == 3 and figures["statistics_difference"] < 1e-4, figures


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="strategy must be one of"):
        distribute.make_strategy("horovod")


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_multi_worker_smoke_two_local_workers_train_like_one_device(cifar_session, tmp_path, trained_smoke_run):
    import numpy as np

    from tests.support.builders import final_weights

    single = trained_smoke_run  # the same small config on one device

    def run_workers():
        workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
        processes = []
        for index in range(2):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            env = dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="3")
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        os.path.join(ROOT, "train.py"),
                        "--config",
                        "configs/smoke.py",
                        "--data_dir",
                        cifar_session,
                        "--workdir",
                        str(tmp_path / "multi"),
                        "--config.strategy=multi_worker",
                        "--config.precision=float32",
                        "--config.eval_batch_size=32",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        try:
            outputs = [process.communicate(timeout=300)[0] for process in processes]
        finally:
            for process in processes:
                process.kill()
        for process, output in zip(processes, outputs):
            assert process.returncode == 0, output[-3000:]
        return outputs

    outputs = run_workers()
    assert "replicas: 2" in outputs[0] and "test accuracy" in outputs[0]
    # Again on the finished run: every worker says so and exits; none waits for the others.
    assert all("run already reached step 6" in output for output in run_workers())
    single, multi = final_weights(single), final_weights(str(tmp_path / "multi"))
    for name in single:
        np.testing.assert_allclose(multi[name], single[name], rtol=1e-5, atol=1e-6, err_msg=name)
