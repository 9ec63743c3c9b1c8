"""Does the feature alignment module align? Its displacement, end-point error and robustness.

Usage::

    from sipsa_tf import inference
    from sipsa_tf.evaluation import alignment
    p = inference.Pansharpener("checkpoints/wald_stage1j")
    rows = alignment.measure_real(p, scenes, alignment.DEFAULT_SHIFTS)   # scenes: Scene list
    print(alignment.summary_table(rows))

SIPSA-Net (Lee, Seo, Kim, CVPR 2021) moves MS features onto the PAN with a per-pixel 9 x 9
softmax kernel (the FAM; docs/design.md, "Feature alignment module"). Its *soft displacement*
is D = sum_k p_k (dy_k, dx_k) in MS pixels (:func:`soft_displacement`): where, in the MS, the
content of each pixel is read from. For an MS whose content is shifted by s (``np.roll(ms, s)``)
the ideal D is s everywhere. This module measures (docs/training.md, "The feature alignment
module"; docs/alignment.md):

* the end-point error EPE = mean ||D - s|| against the known displacement, beside the zero
  predictor's (||s||), the mean largest tap weight (1 = one-hot) and the spatial spread of D
  (0 = the same displacement everywhere, whatever the content);
* the Q2n of SIPSA-Net and of GSA on the displaced MS, so that a fusion's loss under
  misregistration can be compared with a classical method's (reduced resolution, Wald protocol,
  border excluded).

The displaced MS of a real image is made as the training crops are (sipsa_tf.data supervised
crops): the MS is low-passed with the sensor's MTF filter at full resolution and sampled at
positions moved by -s (bilinear), so integer shifts equal a roll of the degraded MS (borders
aside) and sub-pixel shifts are interpolated at the full resolution.
"""
import numpy as np
from scipy import ndimage

from sipsa_tf.constants import FAM_KERNEL, FLAT_SHARE, SCALE
from sipsa_tf.evaluation import quality

# (dy, dx) MS pixels: 0, sub-pixel and integer shifts up to 3 MS pixels in several directions.
DEFAULT_SHIFTS = ((0.0, 0.0), (0.5, 0.0), (0.0, -0.5), (1.0, 0.0), (0.0, 1.0), (-1.0, -1.0),
                  (1.5, -0.5), (2.0, 0.0), (0.0, -2.0), (-2.0, 1.0), (3.0, 0.0), (0.0, 3.0))
# Offsets of the robustness table (issue: 0.5, 1 and 2 MS pixels), each along y and along x.
ROBUSTNESS_OFFSETS = (0.5, 1.0, 2.0)


def fam_offsets(size=FAM_KERNEL):
    """(size * size, 2) array of the taps' (dy, dx), tap 9a + b -> (a - 4, b - 4)."""
    half = size // 2
    grid = np.arange(size) - half
    return np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2).astype(
        np.float64)


def soft_displacement(kernel):
    """D = sum_k p_k (dy_k, dx_k) of FAM weights (..., 81) -> (..., 2) in MS pixels."""
    kernel = np.asarray(kernel, np.float64)
    return kernel @ fam_offsets(int(round(np.sqrt(kernel.shape[-1]))))


def endpoint_error(displacement, truth, mask=None):
    """Mean Euclidean distance between displacements (..., 2) and the truth (broadcast).

    ``mask`` (same leading shape, bool) selects the pixels counted; None counts all.
    """
    err = np.linalg.norm(np.asarray(displacement, np.float64) - np.asarray(truth, np.float64),
                         axis=-1)
    err = np.broadcast_to(err, np.shape(displacement)[:-1])
    return float(err[mask].mean() if mask is not None else err.mean())


def spread(displacement, mask=None):
    """Spatial spread of D: root mean square distance of D from its mean (MS pixels)."""
    d = np.asarray(displacement, np.float64).reshape(-1, 2)
    if mask is not None:
        d = d[np.asarray(mask).reshape(-1)]
    return float(np.sqrt(np.mean(np.sum((d - d.mean(axis=0)) ** 2, axis=1))))


def texture(pan, window=FAM_KERNEL):
    """How much the PAN varies around each MS pixel: where it does not, no displacement can be
    read from the image (the aperture problem).

    Args:
        pan: (4h, 4w) PAN (any scale; the measure is relative).
        window: MS pixels per side of the neighbourhood (default: the FAM's 9).

    Returns:
        (h, w) float64 >= 0: the standard deviation of the PAN's 4 x 4 block means over the
        ``window`` x ``window`` MS pixels around each MS pixel (edges mirrored), over their mean
        (the NumPy twin of :func:`sipsa_tf.core.ops.fill_flat`'s texture).
    """
    h, w = pan.shape[0] // SCALE, pan.shape[1] // SCALE
    p = np.asarray(pan, np.float64)[:SCALE * h, :SCALE * w]
    p = p.reshape(h, SCALE, w, SCALE).mean(axis=(1, 3))
    mean = ndimage.uniform_filter(p, window, mode="mirror")
    var = ndimage.uniform_filter(p * p, window, mode="mirror") - mean ** 2
    var = np.where(var > 1e-12 * mean ** 2, var, 0.0)  # rounding of a flat window counts as 0
    return np.sqrt(var) / (np.abs(mean) + 1e-6)


def least_textured(pan, share=FLAT_SHARE):
    """(h, w) bool: the ``share`` of MS pixels with the lowest :func:`texture`."""
    t = texture(pan)
    return t <= np.quantile(t, share)


def still_statistics(displacement, pan, border=2):
    """How far the FAM moves an MS that is not displaced (the truth is D = 0 everywhere).

    Usage: ``still_statistics(net.alignment(ms, pan)["displacement"], pan)["mean"]``.

    Args:
        displacement: (h, w, 2) soft displacement D on an unshifted pair, MS pixels.
        pan: (4h, 4w) the pair's PAN (for :func:`least_textured`).
        border: MS pixels left out at each edge.

    Returns:
        dict of |D| over the inner pixels, MS pixels: "mean", "median", "p90" (90th
        percentile), "flat" and "rest" (mean on the :func:`least_textured` share and on the
        other pixels), and "mean_dy", "mean_dx" (mean D).
    """
    inner = (slice(border, -border or None),) * 2
    d = np.asarray(displacement, np.float64)[inner]
    norm = np.hypot(d[..., 0], d[..., 1])
    flat = least_textured(pan)[inner]
    return {"mean": float(norm.mean()), "median": float(np.median(norm)),
            "p90": float(np.percentile(norm, 90)), "flat": float(norm[flat].mean()),
            "rest": float(norm[~flat].mean()), "mean_dy": float(d[..., 0].mean()),
            "mean_dx": float(d[..., 1].mean())}


def summary(displacement, max_tap):
    """What the FAM did on one image: dict of "max_tap" (mean largest tap weight), "spread"
    (:func:`spread`), "d_mean_y" and "d_mean_x" (mean D, MS pixels).

    Args:
        displacement: (h, w, 2) soft displacement D.
        max_tap: (h, w) largest softmax weight per pixel.
    """
    d = np.asarray(displacement, np.float64)
    return {"max_tap": float(np.mean(max_tap)), "spread": spread(d),
            "d_mean_y": float(d[..., 0].mean()), "d_mean_x": float(d[..., 1].mean())}


def block_mean(a):
    """(..., 4h, 4w, C) -> (..., h, w, C) float64: the mean over each MS pixel's 4 x 4 PAN
    pixels (NumPy twin of the training loss's block mean)."""
    a = np.asarray(a, np.float64)
    *lead, height, width, c = a.shape
    return a.reshape(*lead, height // SCALE, SCALE, width // SCALE, SCALE, c).mean(axis=(-4, -2))


def flow_colours(displacement, max_norm=3.0):
    """A displacement field as RGB (hue = direction, saturation = length / max_norm).

    Returns:
        (h, w, 3) float64 in [0, 1]; white is no displacement.
    """
    d = np.asarray(displacement, np.float64)
    angle = (np.arctan2(d[..., 0], d[..., 1]) + np.pi) / (2 * np.pi)  # 0..1
    sat = np.clip(np.linalg.norm(d, axis=-1) / max_norm, 0, 1)
    h6 = angle * 6.0
    i = np.floor(h6).astype(int) % 6
    f = h6 - np.floor(h6)
    p, q, t = 1 - sat, 1 - sat * f, 1 - sat * (1 - f)
    v = np.ones_like(sat)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(d.shape[:-1] + (3,))
    for k, (r, g, b) in enumerate(table):
        sel = i == k
        rgb[sel] = np.stack([r[sel], g[sel], b[sel]], axis=-1)
    return rgb


class DisplacedWald:
    """Reduced-resolution (Wald) inputs of one real image with its MS displaced by s.

    Args:
        ms: (H, W, 3) MS at full resolution (the reference), H and W multiples of 4.
        pan: (4H, 4W) PAN.
        gains: the MTF gains of the three bands (``quality.sensor_subset``).

    Attributes:
        reference: (H, W, 3) float64 original MS; pan_lr: (H, W) degraded PAN.
    """

    def __init__(self, ms, pan, gains):
        ms = np.asarray(ms, np.float64)
        self.reference = ms
        self.ms_filtered = quality.mtf_filter(ms, gains, SCALE)
        self.pan_lr = quality.decimate(quality.mtf_filter(np.asarray(pan, np.float64), gains,
                                                          SCALE, pan=True), SCALE)
        self.ms_lr = quality.decimate(self.ms_filtered, SCALE)

    def ms_shifted(self, shift):
        """(H/4, W/4, 3) degraded MS whose content is shifted by ``shift`` (dy, dx) MS pixels.

        Equals ``np.roll(ms_lr, shift)`` for integer shifts away from the borders (nearest
        values at the borders).
        """
        sy, sx = (float(v) for v in shift)
        if sy == 0 and sx == 0:
            return self.ms_lr.copy()
        h, w = self.ms_lr.shape[:2]
        off = SCALE // 2
        rows = (SCALE * np.arange(h) + off - SCALE * sy)[:, None] + np.zeros((1, w))
        cols = (SCALE * np.arange(w) + off - SCALE * sx)[None, :] + np.zeros((h, 1))
        return np.stack([ndimage.map_coordinates(self.ms_filtered[:, :, c], [rows, cols],
                                                 order=1, mode="nearest")
                         for c in range(self.ms_filtered.shape[2])], axis=2)


CAR_COVER = 0.5  # an MS pixel counts as a car pixel when a car covers this share of it


def synthetic_truth(shift, car_list, ms_size):
    """Known displacement of a synthetic scene (:mod:`sipsa_tf.data.synthetic`) at MS resolution.

    Args:
        shift: (dy, dx) PAN pixels by which the MS-instant scene was shifted (``ndimage.shift``).
        car_list: ``info["car_list"]`` of :func:`sipsa_tf.data.synthetic.render_scene`.
        ms_size: the MS side.

    Returns:
        (truth (h, w, 2) MS pixels, cars (h, w) bool): the shift everywhere plus, on the MS
        pixels a car covers (at least ``CAR_COVER``) at the PAN instant, the car's motion.
    """
    from sipsa_tf.data import synthetic
    flow, body = synthetic.car_flow(car_list, SCALE * ms_size)
    flow = flow + np.asarray(shift, np.float64)
    return block_mean(flow) / SCALE, block_mean(body[..., None])[..., 0] >= CAR_COVER


def synthetic_epe(pansharpener, ms, pan, shift, car_list, border=2):
    """FAM end-point errors on a synthetic scene, without ``border`` MS pixels at each side.

    Returns:
        dict: epe_global / epe_global_zero (pixels without cars: the global shift),
        epe_cars / epe_cars_zero (the moving cars' own pixels; NaN without any), car_pixels,
        max_tap, spread; and "displacement", the (h, w, 2) D.
    """
    res = pansharpener.alignment(ms, pan)
    truth, cars = synthetic_truth(shift, car_list, ms.shape[0])
    inner = (slice(border, -border), slice(border, -border))
    disp, truth, cars = res["displacement"][inner], truth[inner], cars[inner]
    zero = np.zeros_like(disp)
    nan = float("nan")
    return {"epe_global": endpoint_error(disp, truth, ~cars),
            "epe_global_zero": endpoint_error(zero, truth, ~cars),
            "epe_cars": endpoint_error(disp, truth, cars) if cars.any() else nan,
            "epe_cars_zero": endpoint_error(zero, truth, cars) if cars.any() else nan,
            "car_pixels": int(cars.sum()), "max_tap": float(res["max_tap"].mean()),
            "spread": spread(disp), "displacement": res["displacement"]}


def border_for(shift):
    """MS pixels (of the degraded MS) excluded at each border for a shift: ceil(max |s|)."""
    return int(np.ceil(max(abs(float(v)) for v in shift)))


def _inner(image, border, scale=1):
    b = border * scale
    return image if b == 0 else image[b:-b, b:-b]


def _q2n(fused, reference):
    block = min(32, *reference.shape[:2])
    return quality.reduced_resolution_indices(fused, reference, SCALE, block=block)["q2n"]


def measure_real(pansharpener, scenes, shifts=DEFAULT_SHIFTS, gsa=True, keep=None):
    """FAM displacement and fusion quality on real images with a displaced MS.

    Args:
        pansharpener: a :class:`sipsa_tf.inference.Pansharpener`.
        scenes: objects with ``name``, ``ms`` (H, W, 3), ``pan`` (4H, 4W) and ``gains``
            (:class:`sipsa_tf.evaluation.scenes.Scene`).
        shifts: (dy, dx) MS-pixel content shifts.
        gsa: also fuse with GSA (for the robustness comparison).
        keep: optional callable ``keep(scene, shift, ms_lr, pan_lr, displacement)``.

    Returns:
        list of dicts: image, dy, dx, epe, epe_zero, max_tap, spread, d_mean_y, d_mean_x,
        q2n_sipsa[, q2n_gsa], border. Measures exclude ``border_for(shift)`` degraded-MS
        pixels at each side (and the matching reference pixels), for every shift alike in the
        aligned row of the same border, so that drops compare like with like.
    """
    from sipsa_tf.evaluation import baselines
    rows = []
    for scene in scenes:
        wald = DisplacedWald(scene.ms, scene.pan, scene.gains)
        for shift in shifts:
            ms_lr = wald.ms_shifted(shift)
            res = pansharpener.alignment(ms_lr.astype(np.float32),
                                         wald.pan_lr.astype(np.float32))
            fused = pansharpener(ms_lr.astype(np.float32), wald.pan_lr.astype(np.float32))
            border = border_for(shift)
            d = _inner(res["displacement"], border)
            truth = np.array(shift, np.float64)
            row = {"image": scene.name, "dy": float(shift[0]), "dx": float(shift[1]),
                   "epe": endpoint_error(d, truth), "epe_zero": float(np.linalg.norm(truth)),
                   "border": border}
            row.update(summary(d, _inner(res["max_tap"], border)))
            ref = _inner(wald.reference, border, SCALE)
            row["q2n_sipsa"] = _q2n(_inner(fused["output"], border, SCALE), ref)
            if gsa:
                g = baselines.fuse("gsa", ms_lr, wald.pan_lr, SCALE, sensor=scene.gains)
                row["q2n_gsa"] = _q2n(_inner(g, border, SCALE), ref)
            rows.append(row)
            if keep is not None:
                keep(scene, shift, ms_lr, wald.pan_lr, res["displacement"])
    return rows


def robustness(pansharpener, scenes, offsets=ROBUSTNESS_OFFSETS):
    """Q2n drop from the aligned case, SIPSA-Net against GSA, per image and offset.

    Each offset o is applied along y (o, 0) and along x (0, o); the aligned Q2n is taken on the
    same inner area (border ceil(o) degraded-MS pixels), and the worse of the two directions is
    reported.

    Returns:
        list of dicts: image, offset, drop_sipsa, drop_gsa, q2n_sipsa_aligned, q2n_gsa_aligned,
        ok (drop_sipsa <= drop_gsa + 0.01).
    """
    from sipsa_tf.evaluation import baselines
    rows = []
    for scene in scenes:
        wald = DisplacedWald(scene.ms, scene.pan, scene.gains)
        pan = wald.pan_lr.astype(np.float32)

        def q2n_pair(ms_lr, border):
            ref = _inner(wald.reference, border, SCALE)
            s = pansharpener(ms_lr.astype(np.float32), pan)["output"]
            g = baselines.fuse("gsa", ms_lr, wald.pan_lr, SCALE, sensor=scene.gains)
            return _q2n(_inner(s, border, SCALE), ref), _q2n(_inner(g, border, SCALE), ref)

        for offset in offsets:
            border = border_for((offset, offset))
            base_s, base_g = q2n_pair(wald.ms_lr, border)
            drops = [tuple(b - v for b, v in zip((base_s, base_g),
                                                  q2n_pair(wald.ms_shifted(s), border)))
                     for s in ((offset, 0.0), (0.0, offset))]
            drop_s, drop_g = max(d[0] for d in drops), max(d[1] for d in drops)
            rows.append({"image": scene.name, "offset": offset, "drop_sipsa": drop_s,
                         "drop_gsa": drop_g, "q2n_sipsa_aligned": base_s,
                         "q2n_gsa_aligned": base_g, "ok": drop_s <= drop_g + 0.01})
    return rows


def summary_table(rows):
    """Markdown: per image, EPE (zero predictor's in brackets) for shifts up to 2 and up to 3
    MS pixels, mean max tap, mean spread."""
    lines = ["| image | EPE, |s| <= 2 (zero predictor) | EPE, |s| <= 3 (zero) | max tap | "
             "spread of D |", "| --- | --- | --- | --- | --- |"]
    for image in dict.fromkeys(r["image"] for r in rows):
        mine = [r for r in rows if r["image"] == image and r["epe_zero"] > 0]
        near = [r for r in mine if r["epe_zero"] <= 2.0 + 1e-9]
        mean = lambda rs, k: float(np.mean([r[k] for r in rs])) if rs else float("nan")
        lines.append("| %s | %.3f (%.3f) | %.3f (%.3f) | %.3f | %.3f |" % (
            image, mean(near, "epe"), mean(near, "epe_zero"), mean(mine, "epe"),
            mean(mine, "epe_zero"), mean([r for r in rows if r["image"] == image], "max_tap"),
            mean([r for r in rows if r["image"] == image], "spread")))
    return "\n".join(lines) + "\n"


def robustness_table(rows):
    """Markdown: Q2n drop from the aligned case, SIPSA-Net / GSA, per image and offset."""
    offsets = sorted(set(r["offset"] for r in rows))
    lines = ["| image | aligned Q2n (SIPSA / GSA) | %s |" % " | ".join(
        "drop at %g px (SIPSA / GSA)" % o for o in offsets),
        "|" + " --- |" * (len(offsets) + 2)]
    for image in dict.fromkeys(r["image"] for r in rows):
        mine = {r["offset"]: r for r in rows if r["image"] == image}
        first = mine[offsets[0]]
        lines.append("| %s | %.3f / %.3f | %s |" % (
            image, first["q2n_sipsa_aligned"], first["q2n_gsa_aligned"], " | ".join(
                "%.3f / %.3f%s" % (mine[o]["drop_sipsa"], mine[o]["drop_gsa"],
                                   "" if mine[o]["ok"] else " (x)") for o in offsets)))
    return "\n".join(lines) + "\n"
