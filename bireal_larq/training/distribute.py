"""Strategy and precision selection: the one place that knows about devices."""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from bireal_larq.training.config import STRATEGIES

log = logging.getLogger(__name__)


def _tpu_resolver():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        resolver.cluster_spec()  # raises when no TPU is reachable
        return resolver
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        return None


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The distribution strategy called ``name``.

    * ``auto``: a TPU if one is reachable, ``multi_worker`` when ``TF_CONFIG`` describes a
      cluster, ``mirrored`` over several GPUs (or several logical CPUs), else ``one_device``.
    * ``one_device``: the default strategy: the first GPU, else the CPU.
    * ``mirrored``: every local GPU; without GPUs every logical CPU device.
    * ``multi_worker``: ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``.
    * ``tpu``: ``TPUStrategy`` on the TPU found by ``TPUClusterResolver``.

    Raises:
        ValueError: an unknown name, or a TPU / cluster that is not there.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; valid: {list(STRATEGIES)}")
    cluster = _tf_config().get("cluster")
    if name == "auto" and cluster:
        name = "multi_worker"
    if name == "multi_worker":
        # Listing devices would initialise TensorFlow, after which collectives cannot be set.
        if not cluster:
            raise ValueError(
                "strategy 'multi_worker' needs TF_CONFIG describing the cluster and this task"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if name == "auto":
        if _tpu_resolver() is not None:
            name = "tpu"
        elif len(gpus) > 1 or (not gpus and len(cpus) > 1):
            name = "mirrored"
        else:
            name = "one_device"
    if name == "one_device":
        # The default strategy places everything on the first GPU (else the CPU); unlike
        # OneDeviceStrategy it is supported by Keras' BackupAndRestore.
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy([d.name for d in (gpus or cpus)])
    resolver = _tpu_resolver()
    if resolver is None:
        raise ValueError("strategy 'tpu' found no TPU; valid here: auto, one_device, mirrored")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _tf_config() -> dict:
    """The parsed ``TF_CONFIG`` ({} when unset or empty).

    Raises:
        ValueError: ``TF_CONFIG`` is not a JSON object.
    """
    text = os.environ.get("TF_CONFIG") or "{}"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}): {text[:200]!r}; valid: a JSON "
                         'object such as {"cluster": {"worker": ["127.0.0.1:12345", ...]}, '
                         '"task": {"type": "worker", "index": 0}}, or unset') from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task', got "
                         f"{type(config).__name__}: {text[:200]!r}")
    return config


def worker_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices ``strategy`` computes on; for the default strategy (``one_device``), the
    first GPU, else the CPU."""
    try:
        return list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no device list
        gpus = tf.config.list_logical_devices("GPU")
        return [(gpus or tf.config.list_logical_devices("CPU"))[0].name]


def check_batch_size(strategy: tf.distribute.Strategy, batch_size: int) -> int:
    """The per-replica batch size; the global ``batch_size`` must split evenly.

    Raises:
        ValueError: ``batch_size`` is not a multiple of the number of replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        valid = [replicas * k for k in (1, 2, 4, 8)]
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {replicas} replicas of "
            f"{type(strategy).__name__}; valid: a multiple of {replicas} (e.g. {valid})"
        )
    return batch_size // replicas


def mixed_precision_policy(strategy: tf.distribute.Strategy) -> str:
    """The mixed policy for the devices of ``strategy``: float16 on GPU, bfloat16 otherwise.

    TPUs compute in bfloat16. On CPU, TensorFlow runs both, but only bfloat16 has fast
    kernels (oneDNN) and it needs no loss scaling, so bfloat16 is chosen and logged.
    """
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    devices = worker_devices(strategy)
    if any("GPU" in d.upper() for d in devices):
        return "mixed_float16"
    log.warning("mixed precision on CPU: using mixed_bfloat16 (float16 has no fast CPU kernels)")
    return "mixed_bfloat16"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (always, unless multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_index = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    if "chief" in resolver.cluster_spec().as_dict():
        return task_type == "chief"
    return task_type == "worker" and task_index == 0


def task_id(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", 0) or 0)
