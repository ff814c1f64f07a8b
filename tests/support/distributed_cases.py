"""Runs in its own process (the CPU must be split before TensorFlow starts): training, resuming and
the explorer's scan on one device and on two mirrored logical CPUs. Prints one JSON line of results.

usage: python tests/support/distributed_cases.py DATA_DIR WORKDIR
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from vizdeconv.hardware import distribute  # noqa: E402

distribute.split_cpu(2)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.support import norms  # noqa: E402
from tests.support.builders import final_weights, small_config  # noqa: E402
from vizdeconv import explore  # noqa: E402
from vizdeconv.config import speedrun_layers  # noqa: E402
from vizdeconv.data import cifar10, pipeline  # noqa: E402
from vizdeconv.runs.subject import open_subject  # noqa: E402
from vizdeconv.training import steps  # noqa: E402
from vizdeconv.training.loop import train_and_evaluate  # noqa: E402

MIRRORED = {"strategy": "mirrored", "devices": "/cpu:0,/cpu:1"}


def max_difference(a: str, b: str) -> float:
    first, second = final_weights(a), final_weights(b)
    assert first.keys() == second.keys()
    return max(float(np.abs(first[k] - second[k]).max()) for k in first)


def train(workdir, steps=6, **overrides):
    config = small_config(data_dir, steps=steps, **overrides)
    return train_and_evaluate(config, os.path.join(root, workdir), log=lambda *_: None)


data_dir, root = sys.argv[1], sys.argv[2]
results = {}
single = train("single")
mirrored = train("mirrored", **MIRRORED)
results["replicas_vs_single"] = max_difference(os.path.join(root, "single"), os.path.join(root, "mirrored"))
results["accuracy"] = [single["test_accuracy"], mirrored["test_accuracy"]]
# A checkpoint written under two replicas resumes under one, and the other way round.
train("two_then_one", steps=3, **MIRRORED)
train("two_then_one", steps=6)
train("one_then_two", steps=3)
train("one_then_two", steps=6, **MIRRORED)
results["two_then_one"] = max_difference(os.path.join(root, "single"), os.path.join(root, "two_then_one"))
results["one_then_two"] = max_difference(os.path.join(root, "single"), os.path.join(root, "one_then_two"))
# Muon inside Lookahead (their own apply and slow weights) under two replicas as on one device.
SPEEDRUN = {"optimizer.name": "muon", "optimizer.learning_rate": 0.05, "optimizer.lookahead_every": 2}
train("muon_single", **SPEEDRUN)
train("muon_mirrored", **SPEEDRUN, **MIRRORED)
results["muon_lookahead"] = max_difference(os.path.join(root, "muon_single"), os.path.join(root, "muon_mirrored"))
# Another network (the speedrun's layers: GELU through its fused XLA kernel, normalization after the pool) under
# two replicas in the same process: a new MirroredStrategy per run made TensorFlow refuse it (#62790).
GELU = {"model.layers": speedrun_layers(widths=(8, 16, 16), whiten_bias_steps=3), "data.image_size": 32,
        "data.normalize": "dataset"}  # fmt: skip
results["gelu_mirrored"] = train("gelu_mirrored", steps=3, **GELU, **MIRRORED)["status"]
# The explorer's scan: per-replica running top-k merged exactly.
model = open_subject(run=os.path.join(root, "single"), log=lambda *_: None, need_data=False).model
images, _ = cifar10.load_binary(data_dir, "test")
alone = explore.scan(model, images, ["conv2", "conv3"], 5, 16, progress=False)
split = explore.scan(
    model,
    images,
    ["conv2", "conv3"],
    5,
    16,
    progress=False,
    strategy=distribute.make_strategy(MIRRORED["strategy"], MIRRORED["devices"]),
)
results["topk_equal"] = all(
    np.array_equal(alone[layer][key], split[layer][key]) for layer in alone for key in alone[layer]
)
# Recomputed batch-normalization statistics: each replica's half-batch counts once, averaged over replicas.
strategy = distribute.make_strategy(MIRRORED["strategy"], MIRRORED["devices"])
single_model, images = norms.two_norm_network()
with strategy.scope():
    mirrored_model, _ = norms.two_norm_network()
batches = strategy.distribute_datasets_from_function(
    lambda context: pipeline.eval_dataset(images, np.zeros(12, np.int32), 4, 8, context, preprocess=tf.identity)
)
results["statistics_batches"] = steps.recompute_statistics(mirrored_model, strategy, batches)
expected = norms.numpy_statistics(single_model, [images[i : i + 2] for i in range(0, 12, 2)])
results["statistics_difference"] = max(
    float(np.abs(getattr(mirrored_model.norms[name], which).numpy() - value).max() / (np.abs(value).max() + 1e-6))
    for name, (mean, variance) in expected.items()
    for which, value in (("moving_mean", mean), ("moving_variance", variance))
)
results["replicas"] = distribute.make_strategy(MIRRORED["strategy"], MIRRORED["devices"]).num_replicas_in_sync
print(json.dumps(results))
