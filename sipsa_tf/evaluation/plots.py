"""What the misalignment benchmark shares: a ghosting measure and PIL line charts.

Part of the evaluation suite (:mod:`sipsa_tf.evaluation`; docs/design.md, "Metrics and test
images").
"""
import math

import numpy as np

from sipsa_tf.evaluation.panels import _font


def _sobel_magnitude(band):
    from scipy import ndimage
    return np.hypot(ndimage.sobel(band, 0, mode="nearest"), ndimage.sobel(band, 1,
                                                                           mode="nearest"))


def ghosting(fused, reference, mask=None, radius=1):
    """Double-edge (ghosting) measure: edge energy of ``fused`` that the reference lacks.

    G = sum_p sum_k max(|grad F_k|(p) - D_r(|grad R_k|)(p), 0)^2 / sum_p sum_k |grad R_k|(p)^2,
    with |grad| the Sobel gradient magnitude per band and D_r a grey dilation (max filter) of
    radius ``radius`` pixels, which forgives edges displaced by up to ``radius`` pixels. A
    ghost (an object or edge drawn twice, e.g. a car at its MS position beside its PAN position)
    adds edges where the reference has none and raises G; blur only lowers gradients and does not
    (it is measured by ERGAS/SCC). Ideal 0; a duplicate of every edge at a clear distance gives
    about 1.

    Args:
        fused, reference: (H, W, C) images on the same grid and scale.
        mask: optional (H, W) bool; sums only over it (e.g. around moving objects).
        radius: dilation radius in pixels.

    Returns:
        float >= 0 (NaN if the reference has no edge in the mask).
    """
    from scipy import ndimage

    f = np.asarray(fused, np.float64)
    r = np.asarray(reference, np.float64)
    if f.shape != r.shape or f.ndim != 3:
        raise ValueError("fused %s and reference %s must be the same (H, W, C) shape"
                         % (f.shape, r.shape))
    excess = energy = 0.0
    sel = np.ones(f.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    for k in range(f.shape[2]):
        gf, gr = _sobel_magnitude(f[:, :, k]), _sobel_magnitude(r[:, :, k])
        allowed = ndimage.maximum_filter(gr, size=2 * radius + 1, mode="nearest")
        excess += float(np.sum(np.maximum(gf - allowed, 0.0)[sel] ** 2))
        energy += float(np.sum(gr[sel] ** 2))
    return excess / energy if energy > 0 else float("nan")


PLOT_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def line_plot(x, series, title, xlabel, size=(360, 240)):
    """A small line chart drawn with PIL (no matplotlib).

    Args:
        x: sequence of x values.
        series: dict {name: sequence of y values (NaN allowed)}, drawn in ``PLOT_COLOURS``.
        title, xlabel: texts.
        size: (width, height) of the plot area in pixels (the legend is added on the right).

    Returns:
        PIL.Image.
    """
    from PIL import Image, ImageDraw

    font = _font()
    left, top, bottom, legend = 48, 18, 28, 110
    width, height = size
    image = Image.new("RGB", (left + width + legend, top + height + bottom), "white")
    draw = ImageDraw.Draw(image)
    values = np.array([v for ys in series.values() for v in ys], np.float64)
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    x = np.asarray(x, np.float64)
    x_lo, x_hi = float(x.min()), float(x.max()) if x.max() > x.min() else float(x.min()) + 1

    def px(xv, yv):
        return (left + (xv - x_lo) / (x_hi - x_lo) * width,
                top + (1 - (yv - lo) / (hi - lo)) * height)

    draw.rectangle([left, top, left + width, top + height], outline="black")
    for i in range(5):
        yv = lo + (hi - lo) * i / 4
        _, yp = px(x_lo, yv)
        draw.line([left - 3, yp, left, yp], fill="black")
        draw.text((2, yp - 5), "%.3g" % yv, fill="black", font=font)
    for xv in x:
        xp, _ = px(xv, lo)
        draw.line([xp, top + height, xp, top + height + 3], fill="black")
        draw.text((xp - 3, top + height + 4), "%g" % xv, fill="black", font=font)
    draw.text((left, 3), title, fill="black", font=font)
    draw.text((left + width // 2 - 3 * len(xlabel), top + height + 15), xlabel, fill="black",
              font=font)
    for i, (name, ys) in enumerate(series.items()):
        colour = PLOT_COLOURS[i % len(PLOT_COLOURS)]
        points = [px(xv, yv) for xv, yv in zip(x, ys) if math.isfinite(yv)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for p in points:
            draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=colour)
        ly = top + 4 + 13 * i
        draw.line([left + width + 8, ly + 6, left + width + 22, ly + 6], fill=colour, width=3)
        draw.text((left + width + 26, ly), name, fill="black", font=font)
    return image


def plot_grid(images, columns=2):
    """Pastes PIL images (same size) into a grid, row by row."""
    from PIL import Image

    w, h = images[0].size
    rows = int(math.ceil(len(images) / float(columns)))
    canvas = Image.new("RGB", (columns * w, rows * h), "white")
    for i, image in enumerate(images):
        canvas.paste(image, ((i % columns) * w, (i // columns) * h))
    return canvas
