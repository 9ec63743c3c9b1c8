"""NumPy-in, NumPy-out SIPSA-Net: the :class:`Pansharpener` API.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021. One graph and one session per Pansharpener, built once with
placeholders of dynamic size and then finalised, so calls with new image sizes add nothing to it.
Works whether TensorFlow's eager mode is on or off.
"""
import numpy as np
import tensorflow as tf

from sipsa_tf import checkpoints
from sipsa_tf.core import losses, metrics, model, network, ops, precision as precisions
from sipsa_tf.io import validation
from sipsa_tf.session import make_session_config, open_session
from sipsa_tf.utils.closing import Closing


class Pansharpener(Closing):
    """SIPSA-Net restored from a checkpoint.

    Example::

        p = Pansharpener("path/to/model-100000")
        res = p(ms, pan)              # res["output"], res["aligned"]: (4h, 4w, 3) in [0, 1]
        p.alignment(ms, pan)          # the FAM's displacement (h, w, 2) and max tap weight
        p.test_metrics(ms, pan)       # the original's test metrics
        p.training_loss(ms, pan)      # the original loss_G at these weights

    Args:
        checkpoint: a checkpoint prefix, or a directory holding one (with or without a
            ``checkpoint`` state file). Only ``op_net/G/*`` is restored; optimiser slots and
            other entries are ignored. ``None`` initialises the weights randomly (for scene
            adaptation from scratch).
        per_sample: the training loss takes the shift minimum per batch item, instead of over
            shift and batch together (the original).
        literal: build the original's literal formulation (FAM through an explicit patch tensor,
            loss through the stacked 98 x B tensor). Same numbers, more memory; for benchmarks.
            Otherwise the FAM is :func:`sipsa_tf.core.ops.local_conv_fused` (XLA-compiled; the first
            call with a new image size runs uncompiled, a later one compiles it).
        seed: graph-level random seed for the random initialisation.
        session_config: optional ``tf.compat.v1.ConfigProto`` (default: :func:`make_session_config`).
        precision: "float32" (default: the faithful port), "bfloat16" or "float16": the dtype of
            the network's convolutions (:mod:`sipsa_tf.core.precision`); normalisation, softmax,
            FAM, metrics and loss stay float32 and the checkpoint is the same. A precision this
            machine does not compute natively is said once on stderr.

    The forward graph is the one the checkpoint was trained with: a run of ``--align_statistics``
    says so in the ``flags.txt`` beside its checkpoints (:func:`checkpoints.forward_options`),
    and its outputs are then de-normalised with the FAM-moved statistics.

    Raises:
        CheckpointError (a ValueError): checkpoint missing, unreadable, or with missing or
            mis-shaped variables (all listed in one message).
        UserError (a ValueError): an unknown precision.
    """

    def __init__(self, checkpoint, per_sample=False, literal=False, seed=None,
                 session_config=None, precision="float32"):
        self.precision = precisions.policy(precision)
        self.checkpoint = None if checkpoint is None else checkpoints.resolve(checkpoint)
        self.graph = tf.Graph()
        with self.graph.as_default():
            if seed is not None:
                tf.compat.v1.set_random_seed(seed)
            self._ms = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], "ms")
            self._pan = tf.compat.v1.placeholder(tf.float32, [None, None, None, 1], "pan")
            fam = ops.local_conv_literal if literal else ops.local_conv_fused
            options = ({} if self.checkpoint is None
                       else checkpoints.forward_options(self.checkpoint))
            fwd = model.forward(self._ms, self._pan, fam=fam, policy=self.precision, **options)
            self._output = tf.clip_by_value(fwd.output, 0.0, 1.0)
            self._aligned = tf.clip_by_value(fwd.aligned, 0.0, 1.0)
            self._alignment = ops.fam_alignment(fwd.kernel)
            self._metrics = metrics.test_metrics(self._output, self._aligned, self._ms, self._pan)
            self._loss = losses.sipsa_loss(fwd.out4, fwd.aligned4, fwd.ms_n, fwd.pan_n,
                                           per_sample=per_sample, literal=literal)["loss"]
            self.variables = network.network_variables(self.graph)
            self.session = open_session(self.graph, self.variables, self.checkpoint,
                                        session_config or make_session_config())
        self.graph.finalize()

    def _feed(self, ms, pan, min_ms_size):
        ms4, pan4 = validation.check_pair(ms, pan, min_ms_size)
        return {self._ms: ms4, self._pan: pan4}, ms4.shape[0]

    def __call__(self, ms, pan):
        """Pansharpens one image (or a batch).

        Args:
            ms: (h, w, 3) or (B, h, w, 3) float MS, values DN / 2047; h, w >= 5.
            pan: (4h, 4w), (4h, 4w, 1) or (B, 4h, 4w, 1) float PAN, same scale.

        Returns:
            dict with "output" (fused) and "aligned" (MS aligned to PAN, at PAN resolution),
            float32 clipped to [0, 1], each (4h, 4w, 3) for a single image or (B, 4h, 4w, 3)
            for a batch of B > 1.

        Raises:
            ValueError: sizes not exactly 4x, wrong band count, NaN/Inf, integer input, image
                smaller than 5 x 5 MS pixels.
        """
        feed, batch = self._feed(ms, pan, model.MIN_MS_SIZE)
        output, aligned = self.session.run([self._output, self._aligned], feed)
        if batch == 1:
            output, aligned = output[0], aligned[0]
        return {"output": output, "aligned": aligned}

    def alignment(self, ms, pan):
        """What the feature alignment module does on one image (or a batch).

        Args: as :meth:`__call__`.

        Returns:
            dict with "displacement": (h, w, 2) float32 soft displacement D = sum_k p_k
            (dy_k, dx_k) in MS pixels (where, in the MS, the content of each pixel is read
            from; :func:`sipsa_tf.core.ops.fam_displacement`) and "max_tap": (h, w) float32,
            the largest of the 81 softmax weights (1 = one-hot); (B, ...) for a batch.
        """
        feed, batch = self._feed(ms, pan, model.MIN_MS_SIZE)
        values = self.session.run(self._alignment, feed)
        return {k: v[0] for k, v in values.items()} if batch == 1 else values

    def test_metrics(self, ms, pan):
        """The original test step's metrics for one image (MS at least 12 x 12).

        Returns:
            dict: ergas, scc (of the output), scc_aligned (SCC2 of the aligned MS), q, qnr;
            Python floats.
        """
        feed, _ = self._feed(ms, pan, metrics.MIN_MS_SIZE_FOR_Q)
        align_x, align_o = self.session.run(self._metrics, feed)
        values = dict(zip(metrics.METRIC_NAMES, (float(v) for v in align_x)))
        values["scc_aligned"] = float(align_o[1])
        return values

    def metric_lists(self, ms, pan):
        """The two raw metric lists [ERGAS, SCC, Q, QNR] and [ERGAS, SCC2, Q, QNR]."""
        feed, _ = self._feed(ms, pan, metrics.MIN_MS_SIZE_FOR_Q)
        align_x, align_o = self.session.run(self._metrics, feed)
        return np.array(align_x, np.float64), np.array(align_o, np.float64)

    def training_loss(self, ms, pan):
        """The original training loss ``loss_G`` for this batch at these weights (B >= 1)."""
        feed, _ = self._feed(ms, pan, model.MIN_MS_SIZE)
        return float(self.session.run(self._loss, feed))

    def close(self):
        """Releases the session."""
        self.session.close()
