"""The tiling plan: cores, windows with their halo, and the tail's pieces.

Part of the scene tool, :mod:`sipsa_tf.scene` (docs/design.md, "Package layout").
"""
from sipsa_tf.constants import SCALE


# PAN pixels kept around a core for the PAN-resolution tail (receptive field 3 PAN pixels).
TAIL_MARGIN = 4



def _grow(c0, c1, pad, lo, hi, length):
    """[c0, c1) grown by ``pad`` on each side, clipped to [lo, hi), then grown (inside [lo, hi))
    to ``length`` if possible, so that the boxes of almost all tiles have one size."""
    a0, a1 = max(lo, c0 - pad), min(hi, c1 + pad)
    a1 = min(hi, max(a1, a0 + length))
    return max(lo, min(a0, a1 - length)), a1



def axis_plan(n, core, halo):
    """Cores and windows along one axis, in MS pixels.

    Cores tile [0, n) in steps of ``core``. Each window is the core grown by ``halo`` and clipped
    to [0, n), then grown (still inside [0, n)) to ``core + 2 halo`` pixels where possible, so
    almost all windows have one size. The halo is >= ``halo`` wherever it is not the scene edge.

    Returns:
        list of ((c0, c1), (w0, w1)).
    """
    return [((c0, min(n, c0 + core)), _grow(c0, min(n, c0 + core), halo, 0, n, core + 2 * halo))
            for c0 in range(0, n, core)]



def plan_tiles(height, width, core, halo):
    """Row-major list of (core, window) boxes ``(y0, y1, x0, x1)`` in MS pixels."""
    rows, cols = axis_plan(height, core, halo), axis_plan(width, core, halo)
    return [((cy[0], cy[1], cx[0], cx[1]), (wy[0], wy[1], wx[0], wx[1]))
            for cy, wy in rows for cx, wx in cols]



def window_note(forward_options, tiles):
    """A one-line note when the output depends on the tiling, else None.

    The original graph is local: with a halo of at least its receptive field, a tiled scene
    equals the whole image computed at once. ``--fam_flat_mean`` is not: the least-textured
    quarter of MS pixels and the mean FAM weights it is given are taken over what the network
    sees, here each window (core and halo), so the result depends on ``--tile`` (docs/scenes.md,
    "Checkpoints whose output depends on the tile").

    Args:
        forward_options: the checkpoint's forward-graph options
            (:func:`sipsa_tf.checkpoints.forward_options`).
        tiles: the plan (:func:`plan_tiles`).

    Returns:
        str or None.
    """
    if not forward_options.get("fam_flat_mean") or len(tiles) < 2:
        return None
    return ("note: this checkpoint was trained with --fam_flat_mean, which is taken per tile "
            "window here, so the output depends on --tile (%d tiles; docs/scenes.md)" % len(tiles))



def split(c0, c1, size):
    """[c0, c1) cut into the fewest pieces of at most ``size``, of (almost) equal length."""
    pieces = -(-(c1 - c0) // size)
    step = -(-(c1 - c0) // pieces)
    return [(a, min(c1, a + step)) for a in range(c0, c1, step)]



def tail_box(sub, window, lengths, margin=TAIL_MARGIN):
    """Where the PAN-resolution tail runs for one sub-tile, and where the sub-tile lies in it.

    The tail is the sub-tile grown by ``margin`` pixels, clipped to the window, then grown inside
    the window to ``lengths`` where possible (one tail shape for almost all sub-tiles).

    Args:
        sub, window: boxes (y0, y1, x0, x1) in PAN pixels of the scene.
        lengths: (height, width) aimed at (the sub-tile sides + 2 margin).
        margin: pixels kept around the sub-tile wherever its edge is not the window's edge.

    Returns:
        (tail, crop): ``tail`` = (top, left, height, width) relative to the window;
        ``crop`` = (top, left, height, width) of the sub-tile relative to the tail.
    """
    starts, sizes, crops = [], [], []
    for s0, s1, w0, w1, length in ((sub[0], sub[1], window[0], window[1], lengths[0]),
                                   (sub[2], sub[3], window[2], window[3], lengths[1])):
        t0, t1 = _grow(s0, s1, margin, w0, w1, length)
        starts.append(t0 - w0)
        sizes.append(t1 - t0)
        crops.append(s0 - t0)
    return ((starts[0], starts[1], sizes[0], sizes[1]),
            (crops[0], crops[1], sub[1] - sub[0], sub[3] - sub[2]))



def _pieces(core, tail_tile):
    """The tail's sub-tiles of a core (MS box): (list of PAN boxes, (height, width) of a tail)."""
    rows = split(SCALE * core[0], SCALE * core[1], tail_tile)
    cols = split(SCALE * core[2], SCALE * core[3], tail_tile)
    lengths = tuple(pieces[0][1] - pieces[0][0] + 2 * TAIL_MARGIN for pieces in (rows, cols))
    return [(y0, y1, x0, x1) for y0, y1 in rows for x0, x1 in cols], lengths
