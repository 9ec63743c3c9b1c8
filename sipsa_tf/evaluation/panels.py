"""PNG panels of an evaluation: crops of the inputs, each method and the error maps.

Part of the evaluation suite (:mod:`sipsa_tf.evaluation`; docs/design.md, "Metrics and test
images").
"""
import io
import re

import numpy as np

from sipsa_tf.constants import SCALE
from sipsa_tf.evaluation.reports import atomic_write
from sipsa_tf.utils import display


ERROR_FRACTION = 0.25  # error maps: white at 1/4 of the displayed (2-98 percentile) range
PANEL_COLOURS = 256     # panels are saved as palette PNGs of this many colours (small files)


def panel_name(image, protocol):
    """The panel's file name: ``panel_<image>_<protocol>.png`` with the image name reduced to
    letters, digits, ``.``, ``-`` and ``_`` (a held-out region ``imgWV2[240:320]`` gives
    ``panel_imgWV2_240-320_full.png``): no brackets or colons for a shell to trip on."""
    safe = re.sub(r"[^\w.-]+", "_", image.replace(":", "-")).strip("_")
    return "panel_%s_%s.png" % (safe, protocol)


def _font():
    from PIL import ImageFont
    return ImageFont.load_default()


def _stretch(x, low, high):
    return display.stretch(x, low, high)


def _rgb(tile):
    return np.repeat(tile[:, :, None], 3, axis=2) if tile.ndim == 2 else tile


def labelled_grid(rows_of_tiles, labels, gap=2, label_height=12):
    """Tiles (uint8, same size, grey or RGB) in a grid with a text label above each.

    Args:
        rows_of_tiles: list of rows, each a list of (h, w[, 3]) uint8 arrays or None (empty).
        labels: same structure, strings.

    Returns:
        PIL.Image.
    """
    from PIL import Image, ImageDraw

    h, w = next(t for row in rows_of_tiles for t in row if t is not None).shape[:2]
    n_cols = max(len(r) for r in rows_of_tiles)
    cell_h = h + label_height + gap
    canvas = Image.new("RGB", (n_cols * (w + gap) + gap, len(rows_of_tiles) * cell_h + gap),
                       "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for r, (tiles, texts) in enumerate(zip(rows_of_tiles, labels)):
        for c, (tile, text) in enumerate(zip(tiles, texts)):
            x, y = gap + c * (w + gap), gap + r * cell_h
            draw.text((x + 1, y), text, fill="black", font=font)
            if tile is not None:
                canvas.paste(Image.fromarray(_rgb(tile)), (x, y + label_height))
    return canvas


def panel(inputs, fused_by, crop=128, centre=None):
    """PNG panel: MS (nearest), PAN, each method; second row: |error| maps (if reference).

    All colour tiles share one stretch (2-98 percentiles of the MS crop, per band) so that
    methods are compared on the same scale; error maps show the mean absolute error over bands,
    white from ``ERROR_FRACTION`` of the displayed range (mean over bands of the 2-98 percentile
    span) upwards, the same scale for every method of the panel.

    Args:
        inputs: (ms (h, w, 3), pan (4h, 4w), reference (4h, 4w, 3) or None).
        fused_by: {method: (4h, 4w, 3) fused image}.
        crop: side of the square crop in PAN pixels.
        centre: (row, col) of the crop in PAN pixels; default the image centre.

    Returns:
        PIL.Image.
    """
    ms, pan, reference = inputs
    crop = min(crop, pan.shape[0], pan.shape[1])
    cy, cx = centre if centre is not None else (pan.shape[0] // 2, pan.shape[1] // 2)
    y0 = int(np.clip(cy - crop // 2, 0, pan.shape[0] - crop)) // SCALE * SCALE
    x0 = int(np.clip(cx - crop // 2, 0, pan.shape[1] - crop)) // SCALE * SCALE
    window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
    ms_up = np.repeat(np.repeat(ms, SCALE, 0), SCALE, 1)[window]
    low, high = display.percentiles(ms_up, axis=(0, 1))
    pan_c = np.asarray(pan)[window]
    tiles = [_stretch(ms_up, low, high), _stretch(pan_c, *display.percentiles(pan_c))]
    names = ["MS (nearest)", "PAN"]
    errors, error_names = [None, None], ["", ""]
    if reference is not None:
        ref = np.asarray(reference)[window]
        tiles.insert(0, _stretch(ref, low, high))
        names.insert(0, "reference")
        errors.insert(0, None)
        error_max = ERROR_FRACTION * float(np.mean(high - low))
        error_names.insert(0, "|error|: white>=%.3g" % error_max)
    for name, fused in fused_by.items():
        f = fused[window]
        tiles.append(_stretch(f, low, high))
        names.append(name)
        if reference is not None:
            errors.append(_stretch(np.abs(f - ref).mean(axis=2), 0.0, error_max))
            error_names.append(name)
    grid, labels = [tiles], [names]
    if reference is not None:
        grid.append(errors)
        labels.append(error_names)
    return labelled_grid(grid, labels)


def save_png(image, path, colours=None):
    """Saves a PIL image atomically (optimised PNG; a palette of ``colours`` if given)."""
    out = io.BytesIO()
    if colours:
        image = image.convert("RGB").quantize(colors=colours)
    image.save(out, format="PNG", optimize=True)
    return atomic_write(path, out.getvalue())
