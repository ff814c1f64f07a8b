"""tf.distribute strategies from the config: the same trainer on one device, GPUs, workers or a TPU."""

import functools
import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "default", devices: str = "") -> tf.distribute.Strategy:
    """The strategy a config names.

    Args:
      name: 'default' (one device), 'mirrored' (all local GPUs, or `devices`), 'multi_worker'
        (reads TF_CONFIG), or 'tpu'.
      devices: comma-separated device names for 'mirrored', e.g. '/cpu:0,/cpu:1'.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        listed = [device.strip() for device in devices.split(",") if device.strip()]
        cpus = [d for d in listed if "cpu" in d.lower()]
        if len(cpus) > 1:
            split_cpu(len(cpus))
        return _mirrored(tuple(listed))
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")


@functools.cache
def _mirrored(devices: tuple) -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy per device set for the whole process. TensorFlow's collective runtime remembers
    each all-reduce's shape by its instance key, and every new strategy numbers its all-reduces from the
    same start: a second network trained under a new strategy in the same process (a notebook, the ablation)
    was refused with "Shape mismatch in the collective instance 100" (tensorflow/tensorflow#62790)."""
    return tf.distribute.MirroredStrategy(list(devices) or None)


def split_cpu(count: int) -> None:
    """Splits the physical CPU into `count` logical devices (/cpu:0 ...), e.g. to test mirroring.

    Raises ValueError once TensorFlow has initialized its devices with another split.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:
        raise ValueError(
            f"cannot split the CPU into {count} devices after TensorFlow started; choose "
            "the strategy before running anything else"
        ) from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes summaries, checkpoints and metrics (worker 0, or the only one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def tf_config_rank() -> tuple[int, int]:
    """(this process's rank, number of processes) of the cluster in TF_CONFIG: the chief first (if any),
    then the workers in index order. Read without starting any server.

    Raises:
      ValueError: TF_CONFIG is missing, not JSON, or does not name this task in its cluster.
    """
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError:
        raise ValueError("TF_CONFIG is not valid JSON") from None
    cluster, task = config.get("cluster", {}), config.get("task", {})
    order = [("chief", i) for i in range(len(cluster.get("chief", [])))]
    order += [("worker", i) for i in range(len(cluster.get("worker", [])))]
    if not order:
        raise ValueError('--strategy multi_worker needs TF_CONFIG, e.g. {"cluster": {"worker": [...]}, "task": ...}')
    me = (task.get("type"), int(task.get("index", 0)))
    if me not in order:
        raise ValueError(f"TF_CONFIG's task {me[0]}:{me[1]} is not in its cluster")
    return order.index(me), len(order)
