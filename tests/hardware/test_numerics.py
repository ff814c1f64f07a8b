"""The numerics a command picks for its CPU: oneDNN on / off before TensorFlow starts, and the nominal peak
that benchmark shares are quoted against."""

import json
import subprocess
import sys

import pytest

from vizdeconv.hardware import cpu


def test_auto_follows_the_measured_table_and_a_users_variable_wins():
    assert cpu.choose_onednn("auto", {}, "AVX2") == (True, "auto: measured fastest on AVX2 CPUs")
    assert cpu.choose_onednn("auto", {}, "AMX")[0] is True
    assert cpu.choose_onednn("auto", {}, "other")[0] is None  # TensorFlow's default stays
    # A TF_ENABLE_ONEDNN_OPTS the user exported is kept; one this module set itself is not "the user's".
    assert cpu.choose_onednn("auto", {"TF_ENABLE_ONEDNN_OPTS": "0"}, "AVX2") == (
        False,
        "TF_ENABLE_ONEDNN_OPTS=0 in the environment",
    )
    ours = {"TF_ENABLE_ONEDNN_OPTS": "0", cpu.REASON_ENV: "--onednn off"}
    assert cpu.choose_onednn("auto", ours, "AVX2")[0] is True
    assert cpu.choose_onednn("off", {"TF_ENABLE_ONEDNN_OPTS": "1"}, "AVX2") == (False, "--onednn off")
    with pytest.raises(ValueError, match="--onednn must be one of auto, on, off"):
        cpu.choose_onednn("fast", {}, "AVX2")


def test_flag_is_read_from_the_command_line_before_any_parser():
    assert cpu.flag_value(["--run", "r", "--onednn", "off"]) == "off"
    assert cpu.flag_value(["--onednn=on", "--layer", "c"]) == "on"
    assert cpu.flag_value(["--run", "r"]) == "auto"
    environ = {}
    assert cpu.configure_onednn("off", environ) == "--onednn off"
    assert environ == {"TF_ENABLE_ONEDNN_OPTS": "0", cpu.REASON_ENV: "--onednn off"}


def test_peak_is_cores_times_clock_times_flops_per_cycle(tmp_path):
    # 2 cores x 2000 MHz x 1024 FLOP/cycle (AMX bfloat16), 64 (AVX-512 float32), 32 (AVX2 float32).
    assert cpu.peak_gflops("AMX", "bfloat16", 2, 2000.0) == 4096.0
    assert cpu.peak_gflops("AMX", "float32", 2, 2000.0) == 256.0
    assert cpu.peak_gflops("AVX512-BF16", "bfloat16", 2, 3000.0, "AuthenticAMD") == 384.0
    assert cpu.peak_gflops("AVX2", "float32", 2, 3000.0, "AuthenticAMD") == 192.0
    assert cpu.peak_gflops("AVX2", "bfloat16", 2, 3000.0) == 192.0  # emulated: float32's units
    assert cpu.peak_gflops("other", "float32", 2, 3000.0) is None
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu MHz\t\t: 2445.406\nflags\t\t: fpu avx2\n\n")
    assert cpu.nominal_mhz(str(info)) == pytest.approx(2445.406)
    assert cpu.cpu_info(str(info))["vendor_id"] == "AuthenticAMD" and cpu.cpu_flags(str(info)) == {"fpu", "avx2"}


@pytest.mark.slow
@pytest.mark.parametrize("choice", ["off", "on"])
def test_onednn_flag_reaches_tensorflow_and_the_header(tmp_path, choice):
    """TensorFlow itself reports the setting (IsMklEnabled), and the benchmark header says why."""
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "vizdeconv.bench", "--network", "deep", "--what", "train_step", "--batch_size",
               "2", "--num_batches", "1", "--precision", "float32", "--onednn", choice, "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["machine"]["onednn"] is (choice == "on")
    assert f"oneDNN {choice} (--onednn {choice})" in result.stdout
    record = report["results"][0]
    if report["machine"]["peak_gflop_per_s"]:
        assert record["share_of_peak"] == pytest.approx(record["gflop_per_s"] / report["machine"]["peak_gflop_per_s"])
        assert "% of the nominal peak" in result.stdout
