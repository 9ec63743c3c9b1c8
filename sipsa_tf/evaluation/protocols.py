"""The two protocols (reduced resolution / Wald, full resolution) and the evaluation loop.

Part of the evaluation suite (:mod:`sipsa_tf.evaluation`; docs/design.md, "Metrics and test
images").
"""
import collections
import time

import numpy as np

from sipsa_tf.evaluation import quality
from sipsa_tf.constants import SCALE
from sipsa_tf.utils.progress import Progress


PROTOCOLS = ("reduced", "full")
REDUCED_INDICES = ("q2n", "q", "sam", "ergas", "scc")
FULL_INDICES = ("d_lambda", "d_s", "qnr", "d_lambda_khan", "hqnr")
INDICES = {"reduced": REDUCED_INDICES, "full": FULL_INDICES}
BLOCK = 32


def protocol_inputs(scene, protocol):
    """(ms, pan, reference or None) that the methods get under ``protocol``."""
    if protocol == "reduced":
        ms_lr, pan_lr = quality.degrade(scene.ms, scene.pan, scene.gains, SCALE)
        return ms_lr.astype(np.float32), pan_lr.astype(np.float32), scene.ms
    return scene.ms, scene.pan, None


def indices(protocol, fused, scene):
    """The protocol's indices of one fused image, dict {index: float}.

    Blocks (Q, Q2n, QNR windows) are ``BLOCK`` = 32 pixels, or the MS side rounded down to a
    multiple of 4 for smaller images (the reference of the reduced protocol and Khan's
    D_lambda are at the MS scale).
    """
    block = min(BLOCK, min(scene.ms.shape[:2]) // SCALE * SCALE)
    if protocol == "reduced":
        return quality.reduced_resolution_indices(fused, scene.ms, SCALE, block=block)
    return quality.full_resolution_indices(fused, scene.ms, scene.pan, SCALE, scene.gains,
                                           block=block)


def evaluate(scenes, methods, protocols=PROTOCOLS, progress="auto", keep=None):
    """Runs every method on every scene under every protocol.

    Args:
        scenes: list of :class:`Scene`.
        methods: a :class:`Methods`.
        protocols: subset of ``PROTOCOLS``.
        progress: progress bar on stderr ("auto", "on", "off").
        keep: optional callable ``keep(scene, protocol, inputs, fused_by_method)`` receiving the
            images (for panels).

    Returns:
        list of row dicts with the keys of ``CSV_COLUMNS`` that apply.
    """

    bar = Progress(len(scenes) * len(protocols) * len(methods.names), "evaluate",
                   mode=progress)
    rows, done = [], 0
    for scene in scenes:
        for protocol in protocols:
            ms, pan, reference = protocol_inputs(scene, protocol)
            fused_by = collections.OrderedDict()
            for name in methods.names:
                start = time.time()
                fused = np.asarray(methods.fuse(name, ms, pan, scene, protocol), np.float64)
                seconds = time.time() - start
                fused_by[name] = fused
                row = {"image": scene.name, "sensor": scene.sensor or "generic",
                       "protocol": protocol, "method": name, "seconds": seconds}
                row.update(indices(protocol, fused, scene))
                rows.append(row)
                done += 1
                bar.update(done, "%s %s %s" % (scene.name, protocol, name))
            if keep is not None:
                keep(scene, protocol, (ms, pan, reference), fused_by)
    bar.close()
    return rows
