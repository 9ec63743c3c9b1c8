"""SIPSA-Net in two stages for tiles: MS-resolution part on a window, PAN tail on pieces.

Part of the scene tool, :mod:`sipsa_tf.scene` (docs/design.md, "Package layout").
"""
import numpy as np

from sipsa_tf.constants import MS_BANDS, SCALE
from sipsa_tf.scene.plan import _pieces, tail_box


# What the PAN-resolution tail takes from the rest of the graph, by the names model.forward gives
# them when it hands them to its pan_window hook, with channel counts: the network's
# depth_to_space output, the normalised PAN, the MS statistics and the aligned MS at PAN
# resolution.
TAIL_INPUTS = (("u", 4), ("pan_n", 1), ("up_mean", 3), ("up_std", 3), ("aligned_up", 3))



class TileModel:
    """SIPSA-Net in two stages: MS-resolution part on a window, PAN-resolution tail on pieces.

    One graph and session, built once and finalised; windows of any size share it. The graph is
    ``model.forward`` with its ``pan_window`` hook replacing each PAN-resolution tensor that the
    tail takes (:data:`TAIL_INPUTS`) by a placeholder: :meth:`features` fetches those tensors for
    a window (running only the MS-resolution part), :meth:`tail` feeds crops of them back and
    runs only the tail. Same operations as the whole graph, so the numbers are the same.

    Args:
        checkpoint: prefix or directory; None initialises the weights randomly (with ``seed``).
        threads: TensorFlow intra-op threads (0: default).
        seed: graph-level seed for the random initialisation.
        precision: the network's precision policy or its name (:mod:`sipsa_tf.core.precision`).

    The forward graph follows the checkpoint's ``flags.txt`` (:func:`checkpoints.forward_options`;
    kept as ``forward_options``).
    """

    @classmethod
    def for_options(cls, checkpoint, options):
        """The tile model a scene run with :class:`~sipsa_tf.scene.options.SceneOptions`
        ``options`` uses (its threads and precision)."""
        return cls(checkpoint, threads=options.threads, precision=options.precision)

    def __init__(self, checkpoint, threads=0, seed=None, precision="float32"):
        import tensorflow as tf
        from sipsa_tf import checkpoints, session
        from sipsa_tf.core import model, network, ops
        from sipsa_tf.core import precision as precisions
        policy = precisions.policy(precision)
        self.checkpoint = None if checkpoint is None else checkpoints.resolve(checkpoint)
        self.graph = tf.Graph()
        with self.graph.as_default():
            if seed is not None:
                tf.compat.v1.set_random_seed(seed)
            self._ms = tf.compat.v1.placeholder(tf.float32, [None, None, 3], "ms")
            self._pan = tf.compat.v1.placeholder(tf.float32, [None, None], "pan")
            channels = dict(TAIL_INPUTS)
            self._handed, self._fed = {}, {}

            def substitute(t, name):
                assert name in channels and name not in self._handed, name
                assert t.shape.as_list()[-1] == channels[name], (name, t.shape)
                self._handed[name] = t[0]
                self._fed[name] = tf.compat.v1.placeholder(
                    tf.float32, [None, None, channels[name]], name)
                return self._fed[name][None]

            options = ({} if self.checkpoint is None
                       else checkpoints.forward_options(self.checkpoint))
            self.forward_options = options
            fwd = model.forward(self._ms[None], self._pan[None, :, :, None],
                                fam=ops.local_conv_fused, pan_window=substitute,
                                policy=policy, **options)
            assert set(self._handed) == set(channels), sorted(self._handed)
            self._output = tf.clip_by_value(fwd.output[0], 0.0, 1.0)
            self._aligned = tf.clip_by_value(fwd.aligned[0], 0.0, 1.0)
            self.variables = network.network_variables(self.graph)
            self.session = session.open_session(
                self.graph, self.variables, self.checkpoint,
                session.make_session_config(threads, inter_op=False))
        self.graph.finalize()

    def features(self, ms, pan, aligned=False):
        """Runs the MS-resolution part on a window.

        Args:
            ms: (h, w, 3) float32 window, DN / (2^bits - 1); h, w >= 5.
            pan: (4h, 4w) float32 window, same scale.
            aligned: also return what the aligned MS needs.

        Returns:
            dict name -> (4h, 4w, channels) float32, the tail's inputs (:data:`TAIL_INPUTS`).
        """
        names = [n for n, _ in TAIL_INPUTS if aligned or n != "aligned_up"]
        values = self.session.run([self._handed[n] for n in names],
                                  {self._ms: ms, self._pan: pan})
        return dict(zip(names, values))

    def tail(self, features, box, aligned=False):
        """Runs the PAN-resolution tail on ``box`` = (top, left, height, width) of the window.

        Returns:
            output (height, width, 3) float32 in [0, 1], and the aligned MS of the same shape
            (or None).
        """
        top, left, height, width = box
        feed = {self._fed[n]: v[top:top + height, left:left + width]
                for n, v in features.items()}
        if aligned:
            return tuple(self.session.run([self._output, self._aligned], feed))
        return self.session.run(self._output, feed), None

    def __call__(self, ms, pan, box, aligned=False):
        """:meth:`features` of a window, then :meth:`tail` on ``box`` of it."""
        return self.tail(self.features(ms, pan, aligned), box, aligned)

    def close(self):
        """Releases the session."""
        self.session.close()



def sharpen_window(tile_model, ms, pan, core, window, tail_tile, aligned=False, on_piece=None):
    """SIPSA-Net output (and aligned MS) on the core of one window.

    Args:
        tile_model: a :class:`TileModel`.
        ms: (h, w, 3) float32 MS of the window, DN / (2^bits - 1).
        pan: (4h, 4w) float32 PAN of the window, same scale.
        core, window: boxes (y0, y1, x0, x1) in MS pixels of the scene; the window holds the
            core and a halo of at least the receptive field wherever it is not the scene edge.
        tail_tile: largest side of the pieces on which the PAN-resolution tail runs.
        aligned: also compute the aligned MS.
        on_piece: optional callback ``on_piece(pixels)`` after each piece.

    Returns:
        (output, aligned or None): (4 core height, 4 core width, 3) float32 in [0, 1].
    """
    features = tile_model.features(ms, pan, aligned)
    pan_window = tuple(SCALE * v for v in window)
    shape = (SCALE * (core[1] - core[0]), SCALE * (core[3] - core[2]), MS_BANDS)
    results = [np.empty(shape, np.float32), np.empty(shape, np.float32) if aligned else None]
    boxes, lengths = _pieces(core, tail_tile)
    for sub in boxes:
        box, crop = tail_box(sub, pan_window, lengths)
        at = (slice(sub[0] - SCALE * core[0], sub[1] - SCALE * core[0]),
              slice(sub[2] - SCALE * core[2], sub[3] - SCALE * core[2]))
        for result, values in zip(results, tile_model.tail(features, box, aligned)):
            if result is not None:
                result[at] = values[crop[0]:crop[0] + crop[2], crop[1]:crop[1] + crop[3]]
        if on_piece is not None:
            on_piece(crop[2] * crop[3])
    return tuple(results)
