"""Sessions for the package's graphs: the session options and the init-or-restore step.

SIPSA-Net (Lee, Seo, Kim, CVPR 2021) inference graphs (:class:`sipsa_tf.inference.Pansharpener`,
:class:`sipsa_tf.scene.TileModel`) and the trainer all build their own ``tf.Graph``; this is the
one place that configures their sessions and restores (or initialises) the network's weights
(docs/design.md, "Package layout").
"""
import tensorflow as tf

from sipsa_tf import checkpoints


def make_session_config(threads=0, inter_op=True):
    """Session options used by the package: thread counts and Grappler's remapper off.

    On the graphs that compute the original's test metrics the remapper fails after the
    arithmetic optimiser's rewrite and logs ``remapper failed: INVALID_ARGUMENT: Mutation::Apply
    error`` (the change is discarded). Turning it off removes the message and changes no number
    (tests/test_train.py compares losses, weights after AdamW steps and test outputs).

    Args:
        threads: intra-op threads (and inter-op threads if ``inter_op``); 0: TensorFlow's
            default.
        inter_op: also set the inter-op thread count.

    Returns:
        A ``tf.compat.v1.ConfigProto``.
    """
    from tensorflow.core.protobuf import rewriter_config_pb2
    proto = tf.compat.v1.ConfigProto()
    if threads > 0:
        proto.intra_op_parallelism_threads = threads
        if inter_op:
            proto.inter_op_parallelism_threads = threads
    proto.graph_options.rewrite_options.remapping = rewriter_config_pb2.RewriterConfig.OFF
    return proto


def open_session(graph, variables, checkpoint, config):
    """A session on ``graph`` with ``variables`` restored from ``checkpoint`` (or initialised).

    Args:
        graph: the ``tf.Graph`` (the caller finalises it afterwards).
        variables: the network variables.
        checkpoint: a resolved checkpoint prefix, or None for the random initialisation.
        config: ``tf.compat.v1.ConfigProto``.

    Returns:
        The ``tf.compat.v1.Session``.

    Raises:
        checkpoints.CheckpointError: the checkpoint does not fit (the session is closed).
    """
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        with graph.as_default():
            if checkpoint is None:
                session.run(tf.compat.v1.variables_initializer(variables))
            else:
                checkpoints.restore(session, checkpoint, variables)
    except BaseException:
        session.close()
        raise
    return session
