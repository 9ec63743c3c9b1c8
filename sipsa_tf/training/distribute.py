"""Data-parallel training: the ``--strategy`` of the session trainer (tf.compat.v1.distribute).

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md ("Data-parallel training") describes what changes
when a step runs on several replicas.

* ``default``: no strategy; the trainer builds exactly the one-device graph it always built.
* ``mirrored``: ``tf.compat.v1.distribute.MirroredStrategy`` over ``--devices`` (default: every
  visible GPU, else the CPU alone). CPU devices ``/cpu:0,/cpu:1,...`` are made by the session
  (``device_count``), which is how the tests get two replicas on one CPU.
* ``multi_worker``: ``tf.compat.v1.distribute.experimental.MultiWorkerMirroredStrategy`` over the
  cluster that ``TF_CONFIG`` describes, as TensorFlow documents it (``{"cluster": {"worker":
  [host:port, ...]}, "task": {"type": "worker", "index": i}}``); each process starts an in-process
  ``tf.distribute.Server`` and runs its session on it. Worker 0 is the chief.

Every replica gets ``batch_size / replicas`` crops of the global batch; the gradients of the
per-replica losses, each divided by the number of replicas, are summed across replicas, so the
step uses the mean over replicas. The original loss takes its shift minimum over shifts and batch
items together: under a strategy that minimum is taken within each replica's share of the batch.
With ``--per_sample_loss`` the loss is a mean over batch items, and N replicas give the
gradients of one device on the same global batch (tests/test_distribute.py).
"""
import contextlib
import dataclasses
import json
import logging
import os
import re

import tensorflow as tf

from sipsa_tf.errors import UserError
from sipsa_tf.training.config import check_strategy


@dataclasses.dataclass
class Replicas:
    """A built strategy and what the trainer needs to know about it.

    Attributes:
        strategy: the ``tf.distribute`` strategy object.
        count: replicas in sync (all workers together).
        chief: whether this process writes (checkpoints, logs, summaries, test images).
        target: session target ('' for an in-process session, the server's for multi_worker).
        cpus: CPU devices the session must create (``device_count``).
        server: the multi_worker ``tf.distribute.Server`` (None otherwise).
    """
    strategy: object
    count: int
    chief: bool = True
    target: str = ""
    cpus: int = 1
    server: object = None

    def session_config(self, proto):
        """``proto`` (a ConfigProto) completed for this strategy's devices and cluster."""
        proto.device_count["CPU"] = max(self.cpus, 1)
        if self.server is not None:
            proto = self.strategy.update_config_proto(proto)
        return proto


def parse_devices(text):
    """'/gpu:0,/gpu:1' -> ['/gpu:0', '/gpu:1'] (also 'gpu:0', 'cpu:1'); raises UserError."""
    devices = []
    for item in (t.strip() for t in (text or "").split(",")):
        if not item:
            continue
        match = re.fullmatch(r"/?(?:device:)?(cpu|gpu):(\d+)", item, re.IGNORECASE)
        if not match:
            raise UserError("--devices: %r is not a device like /gpu:0 or /cpu:1" % item)
        devices.append("/%s:%d" % (match.group(1).lower(), int(match.group(2))))
    if len(set(devices)) != len(devices):
        raise UserError("--devices names a device twice: %s" % text)
    return devices


def tf_config():
    """The parsed ``TF_CONFIG`` (cluster, task type and index); raises UserError if unusable."""
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        raise UserError("--strategy=multi_worker needs TF_CONFIG (the cluster and this task), "
                        "e.g. {\"cluster\": {\"worker\": [\"host1:port\", \"host2:port\"]}, "
                        "\"task\": {\"type\": \"worker\", \"index\": 0}}")
    try:
        parsed = json.loads(text)
        workers = list(parsed["cluster"]["worker"])
        task = parsed["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise UserError("TF_CONFIG is not a cluster with a worker list and a task: %s" % err)
    if kind != "worker" or not 0 <= index < len(workers):
        raise UserError("TF_CONFIG: this task must be one of the %d workers, got %s %s"
                        % (len(workers), kind, index))
    return parsed["cluster"], kind, index


def is_chief(config):
    """Whether this process writes the run's files: always, except a multi_worker worker whose
    TF_CONFIG index is not 0."""
    return config.strategy != "multi_worker" or tf_config()[2] == 0


def build(name, devices="", batch_size=None):
    """Builds the strategy ``name`` (call it inside the training graph).

    Args:
        name: one of :data:`STRATEGIES`.
        devices: ``--devices`` for ``mirrored`` ('' = every GPU, else the CPU).
        batch_size: the global batch, checked to split evenly over the replicas.

    Returns:
        :class:`Replicas`, or None for ``default``.

    Raises:
        UserError: unknown strategy, bad devices or TF_CONFIG, a batch that does not split.
    """
    check_strategy(name, devices)
    if name == "default":
        return None
    if name == "mirrored":
        listed = parse_devices(devices)
        if not listed:
            gpus = tf.config.list_physical_devices("GPU")
            listed = ["/gpu:%d" % i for i in range(len(gpus))] or ["/cpu:0"]
        _check_split(batch_size, len(listed), name)
        cpus = 1 + max([int(d.split(":")[1]) for d in listed if d.startswith("/cpu")] + [0])
        return Replicas(tf.compat.v1.distribute.MirroredStrategy(listed), len(listed),
                        cpus=cpus)
    cluster, kind, index = tf_config()
    strategy = tf.compat.v1.distribute.experimental.MultiWorkerMirroredStrategy()
    _check_split(batch_size, strategy.num_replicas_in_sync, name)
    config = strategy.update_config_proto(tf.compat.v1.ConfigProto())
    server = tf.distribute.Server(tf.train.ClusterSpec(cluster), job_name=kind,
                                  task_index=index, config=config, start=True)
    return Replicas(strategy, strategy.num_replicas_in_sync, chief=index == 0,
                    target=server.target, server=server)


def _check_split(batch_size, count, name):
    if batch_size is not None and batch_size % count:
        raise UserError("--batch_size=%d does not split over %d replicas (--strategy=%s)"
                        % (batch_size, count, name))


@contextlib.contextmanager
def quiet_info():
    """Holds back TensorFlow's INFO and WARNING log lines while a strategy builds its graph:
    one line per variable and reduction ('Reduce to /replica:0/... then broadcast to ...'), and
    the deprecation notices of the tf.compat.v1 distribution API that graph mode needs
    (``experimental_run``, the iterator's initializer)."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def local_values(replicas, value):
    """The per-device components of a distributed value (a list)."""
    return list(replicas.strategy.experimental_local_results(value))
