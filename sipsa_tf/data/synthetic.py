"""Synthetic PAN/MS scenes for training and testing SIPSA-Net without real imagery.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021. The paper's point is that the PAN and MS bands of a satellite are
not acquired at the same instant nor on exactly the same grid: the whole MS image is offset from
the PAN by a fraction of a pixel, and cars move between the two acquisitions. These scenes have
both properties, so the feature alignment module and the shift-invariant loss have something to
do, and they are small enough for CPU training.

A scene is drawn at PAN resolution as four reflectance bands (R, G, B, NIR), twice: once at the
PAN instant and once at the MS instant (cars moved along their roads). The MS instant is shifted by
a global sub-pixel offset, blurred and averaged over 4 x 4 blocks; PAN is a weighted band sum at the
PAN instant. Both become 11-bit digital numbers (0..2047) with sensor noise and are written as
uint16 TIFFs in the original code's folder layout::

    <out>/Trgbn_TRAIN/RGB/scene_000.tif   (h, w, 3) MS, R G B
    <out>/Trgbn_TRAIN/PAN/scene_000.tif   (4h, 4w) PAN
    <out>/Trgbn_TRAIN/RGB2/road_000.tif   road-heavy scenes (the original's second set)
    <out>/Trgbn_TRAIN/PAN2/road_000.tif
    <out>/Test/RGB/test_000.tif, <out>/Test/PAN/test_000.tif
    <out>/synthetic.json                  parameters and per-scene offsets / car motions

Everything is deterministic from the seed: scene i of a set depends only on (seed, set, i), so a
smaller set (e.g. only the test scenes) holds the same scenes as a larger one.

Command line: ``python -m sipsa_tf.data.synthetic --out_dir data/synthetic [--seed 0]``.
"""
import json
import os
import shutil

import numpy as np
from scipy import ndimage

from sipsa_tf.constants import SCALE
from sipsa_tf.utils import files
from sipsa_tf.errors import UserError
DN_MAX = 2047  # 11-bit data, as WorldView-3
FORMAT_VERSION = 1
MANIFEST = "synthetic.json"
TRAIN_FOLDER = "Trgbn_TRAIN"
TEST_FOLDER = "Test"

# (set id for the random streams, folder of MS, folder of PAN, file stem, road-heavy)
_SETS = {
    "train": (1, os.path.join(TRAIN_FOLDER, "RGB"), os.path.join(TRAIN_FOLDER, "PAN"),
              "scene", False),
    "road": (2, os.path.join(TRAIN_FOLDER, "RGB2"), os.path.join(TRAIN_FOLDER, "PAN2"),
             "road", True),
    "test": (3, os.path.join(TEST_FOLDER, "RGB"), os.path.join(TEST_FOLDER, "PAN"),
             "test", False),
}

DEFAULTS = {"n_train": 24, "n_road": 8, "n_test": 4, "ms_size": 64, "seed": 0}

# Reflectance palettes (R, G, B, NIR).
_FIELDS = np.array([
    [0.10, 0.22, 0.08, 0.55],   # green crop
    [0.14, 0.28, 0.10, 0.60],   # lush crop
    [0.30, 0.26, 0.16, 0.35],   # bare soil
    [0.42, 0.38, 0.22, 0.40],   # dry grass / wheat
    [0.22, 0.18, 0.12, 0.30],   # ploughed
    [0.06, 0.12, 0.07, 0.45],   # forest
])
_ROOFS = np.array([
    [0.55, 0.22, 0.16, 0.30],   # red tiles
    [0.45, 0.45, 0.47, 0.42],   # grey concrete
    [0.75, 0.75, 0.74, 0.70],   # white
    [0.20, 0.30, 0.50, 0.25],   # blue metal
    [0.30, 0.22, 0.18, 0.25],   # dark brown
])
_CARS = np.array([
    [0.80, 0.08, 0.06, 0.35],   # red
    [0.08, 0.15, 0.70, 0.20],   # blue
    [0.90, 0.90, 0.90, 0.80],   # white
    [0.04, 0.04, 0.05, 0.05],   # black
    [0.85, 0.75, 0.10, 0.45],   # yellow
])
_ASPHALT = np.array([0.18, 0.18, 0.19, 0.16])
_MARKING = np.array([0.80, 0.80, 0.78, 0.70])
_PAN_WEIGHTS = np.array([0.30, 0.35, 0.10, 0.25])  # PAN spectral response over R, G, B, NIR


def _parcels(rng, size, depth=0, box=None):
    """Recursively splits the image into rectangular field parcels: list of (y0, y1, x0, x1)."""
    box = box or (0, size, 0, size)
    y0, y1, x0, x1 = box
    h, w = y1 - y0, x1 - x0
    if depth >= 4 or max(h, w) < size // 6 or (depth >= 2 and rng.random() < 0.3):
        return [box]
    if h >= w:
        cut = int(y0 + h * rng.uniform(0.3, 0.7))
        halves = [(y0, cut, x0, x1), (cut, y1, x0, x1)]
    else:
        cut = int(x0 + w * rng.uniform(0.3, 0.7))
        halves = [(y0, y1, x0, cut), (y0, y1, cut, x1)]
    return [p for half in halves for p in _parcels(rng, size, depth + 1, half)]


def _draw_fields(rng, img, yy, xx):
    size = img.shape[0]
    smooth = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 16.0)
    smooth /= np.abs(smooth).max() + 1e-9
    for y0, y1, x0, x1 in _parcels(rng, size):
        colour = _FIELDS[rng.integers(len(_FIELDS))] * rng.uniform(0.85, 1.15)
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(3.0, 9.0)
        amp = rng.uniform(0.0, 0.12)
        sub_y, sub_x = yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]
        rows = np.sin(2 * np.pi * (np.cos(angle) * sub_y + np.sin(angle) * sub_x) / period)
        tex = 1.0 + amp * rows + 0.08 * smooth[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = colour[None, None, :] * tex[..., None]


def _road_frame(yy, xx, road):
    """Coordinates along (u) and across (v) a straight road."""
    cy, cx, angle = road["cy"], road["cx"], road["angle"]
    dy, dx = np.sin(angle), np.cos(angle)
    u = (yy - cy) * dy + (xx - cx) * dx
    v = -(yy - cy) * dx + (xx - cx) * dy
    return u, v


def _draw_roads(rng, img, yy, xx, n_roads):
    size = img.shape[0]
    roads = []
    for _ in range(n_roads):
        angle = rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)])
        road = {"cy": rng.uniform(0.2, 0.8) * size, "cx": rng.uniform(0.2, 0.8) * size,
                "angle": float(angle), "width": float(rng.uniform(7.0, 13.0))}
        u, v = _road_frame(yy, xx, road)
        body = np.abs(v) < road["width"] / 2
        img[body] = _ASPHALT * rng.uniform(0.9, 1.1)
        dashes = (np.abs(v) < 0.6) & (np.mod(u, 12.0) < 6.0)
        img[dashes] = _MARKING
        roads.append(road)
    return roads


def _draw_buildings(rng, img, roads, yy, xx, n_buildings):
    size = img.shape[0]
    placed = 0
    for _ in range(n_buildings * 4):
        if placed >= n_buildings:
            break
        bh, bw = rng.integers(8, 28, size=2)
        y0, x0 = rng.integers(0, size - bh), rng.integers(0, size - bw)
        cy, cx = y0 + bh / 2, x0 + bw / 2
        if any(abs(_road_frame(cy, cx, r)[1]) < r["width"] / 2 + max(bh, bw) / 2 + 2
               for r in roads):
            continue  # keep buildings off the roads
        shadow = int(rng.integers(2, 5))
        sy1, sx1 = min(size, y0 + bh + shadow), min(size, x0 + bw + shadow)
        img[y0 + shadow:sy1, x0 + shadow:sx1] *= 0.45  # cast shadow to the lower right
        roof = _ROOFS[rng.integers(len(_ROOFS))] * rng.uniform(0.9, 1.1)
        img[y0:y0 + bh, x0:x0 + bw] = roof
        ridge = (yy[y0:y0 + bh, x0:x0 + bw] - y0) < bh / 2  # two roof halves, lit differently
        img[y0:y0 + bh, x0:x0 + bw][ridge] *= 1.12
        placed += 1


def _place_cars(rng, roads, size, n_cars):
    """Cars on roads: position along (u) and across (v) the road, motion between acquisitions."""
    cars = []
    if not roads:
        return cars
    for _ in range(n_cars):
        road = roads[rng.integers(len(roads))]
        lane = rng.choice([-1.0, 1.0]) * road["width"] / 4
        speed = rng.uniform(4.0, 14.0) * (1.0 if lane > 0 else -1.0)  # PAN pixels between shots
        cars.append({"road": road, "u": float(rng.uniform(-0.5, 0.5) * size),
                     "v": float(lane), "length": float(rng.uniform(5.0, 8.0)),
                     "width": float(rng.uniform(2.5, 3.5)),
                     "colour": _CARS[rng.integers(len(_CARS))], "motion": float(speed)})
    return cars


def _draw_cars(img, cars, yy, xx, moved):
    for car in cars:
        u, v = _road_frame(yy, xx, car["road"])
        centre = car["u"] + (car["motion"] if moved else 0.0)
        body = (np.abs(u - centre) < car["length"] / 2) & (np.abs(v - car["v"]) < car["width"] / 2)
        img[body] = car["colour"]


def car_flow(cars, pan_size):
    """Where each PAN-instant car pixel's content lies at the MS instant, in PAN pixels.

    Args:
        cars: the ``info["car_list"]`` of :func:`render_scene`.
        pan_size: the scene's PAN height and width.

    Returns:
        (flow, body): (pan_size, pan_size, 2) float64 (dy, dx), the car's motion on its pixels
        at the PAN instant and 0 elsewhere; (pan_size, pan_size) bool, those pixels.
    """
    yy, xx = np.mgrid[0:pan_size, 0:pan_size].astype(np.float64)
    flow = np.zeros((pan_size, pan_size, 2))
    body_any = np.zeros((pan_size, pan_size), bool)
    for car in cars:
        u, v = _road_frame(yy, xx, car["road"])
        body = ((np.abs(u - car["u"]) < car["length"] / 2)
                & (np.abs(v - car["v"]) < car["width"] / 2))
        angle = car["road"]["angle"]
        flow[body] = car["motion"] * np.array([np.sin(angle), np.cos(angle)])
        body_any |= body
    return flow, body_any


def render_scene(rng, pan_size, road_heavy=False):
    """Draws one scene at the PAN and at the MS acquisition instants.

    Args:
        rng: ``numpy.random.Generator``.
        pan_size: PAN height and width (a multiple of 4).
        road_heavy: more roads and cars (the original's second training set held road scenes).

    Returns:
        (pan_time, ms_time, info): two (pan_size, pan_size, 4) float64 reflectance images
        (R, G, B, NIR, roughly 0..1) and a dict describing the scene (car count, motions;
        ``car_list`` holds the cars themselves, for :func:`car_flow`).
    """
    yy, xx = np.mgrid[0:pan_size, 0:pan_size].astype(np.float64)
    base = np.zeros((pan_size, pan_size, 4))
    _draw_fields(rng, base, yy, xx)
    n_roads = int(rng.integers(2, 4)) if road_heavy else int(rng.integers(1, 3))
    roads = _draw_roads(rng, base, yy, xx, n_roads)
    _draw_buildings(rng, base, roads, yy, xx, int(rng.integers(3, 9)))
    n_cars = int(rng.integers(10, 20)) if road_heavy else int(rng.integers(3, 9))
    cars = _place_cars(rng, roads, pan_size, n_cars)
    pan_time, ms_time = base.copy(), base
    _draw_cars(pan_time, cars, yy, xx, moved=False)
    _draw_cars(ms_time, cars, yy, xx, moved=True)
    info = {"roads": len(roads), "cars": len(cars),
            "car_motion_pan_px": [round(c["motion"], 2) for c in cars]}
    info["car_list"] = cars  # for car_flow; not serialised
    return pan_time, ms_time, info


def acquire(rng, pan_time, ms_time, max_offset=2.0, noise_dn=3.0):
    """Turns the two scene instants into an 11-bit PAN and a 4x smaller 3-band MS.

    Args:
        rng: ``numpy.random.Generator``.
        pan_time, ms_time: (H, W, 4) reflectance images, H and W multiples of 4.
        max_offset: the global MS/PAN offset is uniform in +-max_offset PAN pixels per axis
            (2 PAN pixels = half an MS pixel).
        noise_dn: standard deviation of the sensor noise in digital numbers.

    Returns:
        (ms, pan, offset): ms (H/4, W/4, 3) uint16 R, G, B; pan (H, W) uint16; offset (dy, dx)
        in PAN pixels.
    """
    offset = rng.uniform(-max_offset, max_offset, size=2)
    shifted = ndimage.shift(ms_time, (offset[0], offset[1], 0), order=1, mode="reflect")
    blurred = ndimage.gaussian_filter(shifted, (1.2, 1.2, 0))  # MS optics / MTF
    h, w = blurred.shape[0] // SCALE, blurred.shape[1] // SCALE
    ms = blurred.reshape(h, SCALE, w, SCALE, 4).mean(axis=(1, 3))[..., :3]
    pan = ndimage.gaussian_filter(pan_time @ _PAN_WEIGHTS, 0.5)
    gain = DN_MAX / 1.0  # reflectance 1.0 saturates

    def to_dn(x):
        noisy = x * gain + rng.normal(0.0, noise_dn, size=x.shape)
        return np.clip(np.round(noisy), 0, DN_MAX).astype(np.uint16)

    return to_dn(ms), to_dn(pan), (float(offset[0]), float(offset[1]))


def make_scene(seed, set_name, index, ms_size):
    """One scene of a set, deterministic from (seed, set, index).

    Returns:
        (ms, pan, info): uint16 (ms_size, ms_size, 3) and (4 ms_size, 4 ms_size), and a dict.
    """
    set_id, _, _, _, road_heavy = _SETS[set_name]
    rng = np.random.default_rng([seed, set_id, index])
    pan_time, ms_time, info = render_scene(rng, SCALE * ms_size, road_heavy)
    ms, pan, offset = acquire(rng, pan_time, ms_time)
    info["offset_pan_px"] = [round(offset[0], 3), round(offset[1], 3)]
    info.pop("car_list")  # the scene list is JSON
    return ms, pan, info


def _params(seed, n_train, n_road, n_test, ms_size):
    return {"format_version": FORMAT_VERSION, "seed": int(seed), "n_train": int(n_train),
            "n_road": int(n_road), "n_test": int(n_test), "ms_size": int(ms_size)}


def is_generated(out_dir, **params):
    """True if ``out_dir`` holds a complete set generated with exactly these parameters."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f).get("params")
    except (OSError, ValueError):
        return False
    return stored == _params(**{**DEFAULTS, **params})


def generate(out_dir, seed=DEFAULTS["seed"], n_train=DEFAULTS["n_train"],
             n_road=DEFAULTS["n_road"], n_test=DEFAULTS["n_test"], ms_size=DEFAULTS["ms_size"],
             force=False):
    """Writes the synthetic scene set (see the module docstring) unless it is already there.

    The set is written into a temporary sibling folder and moved into place at the end, so an
    interrupted run never leaves a half-written set behind under ``out_dir``.

    Args:
        out_dir: destination folder (created; must not hold anything else if it exists and
            was not generated with the same parameters).
        seed: random seed.
        n_train, n_road, n_test: number of scenes in Trgbn_TRAIN/{RGB,PAN},
            Trgbn_TRAIN/{RGB2,PAN2} and Test/{RGB,PAN}.
        ms_size: MS height and width (PAN is 4x); at least 16.
        force: regenerate even if a matching set exists.

    Returns:
        out_dir.
    """
    params = _params(seed, n_train, n_road, n_test, ms_size)
    if ms_size < 16:
        raise UserError("ms_size must be at least 16, got %d" % ms_size)
    if not force and is_generated(out_dir, seed=seed, n_train=n_train, n_road=n_road,
                                  n_test=n_test, ms_size=ms_size):
        return out_dir
    import tifffile  # only needed when writing

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = files.temporary_directory(out_dir)
    try:
        scenes = []
        counts = {"train": n_train, "road": n_road, "test": n_test}
        for set_name, count in counts.items():
            _, ms_folder, pan_folder, stem, _ = _SETS[set_name]
            if count == 0:
                continue
            os.makedirs(os.path.join(tmp, ms_folder))
            os.makedirs(os.path.join(tmp, pan_folder))
            for i in range(count):
                ms, pan, info = make_scene(seed, set_name, i, ms_size)
                name = "%s_%03d.tif" % (stem, i)
                tifffile.imwrite(os.path.join(tmp, ms_folder, name), ms, photometric="rgb")
                tifffile.imwrite(os.path.join(tmp, pan_folder, name), pan,
                                 photometric="minisblack")
                scenes.append({"set": set_name, "file": name, **info})
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
            json.dump({"params": params, "scenes": scenes}, f, indent=1)
        if os.path.exists(out_dir):
            leftovers = [n for n in os.listdir(out_dir)
                         if n not in (TRAIN_FOLDER, TEST_FOLDER, MANIFEST)]
            if leftovers:
                raise UserError("%s exists and holds other files (%s); choose an empty or new "
                                 "folder for the synthetic set" % (out_dir, ", ".join(leftovers)))
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def main(argv=None):
    """Command line: generate the synthetic scene set."""
    import argparse
    parser = argparse.ArgumentParser(description="Generate synthetic PAN/MS scenes "
                                     "(uint16 11-bit TIFFs in the original SIPSA-Net layout).")
    parser.add_argument("--out_dir", required=True)
    for key in ("seed", "n_train", "n_road", "n_test", "ms_size"):
        parser.add_argument("--" + key, type=int, default=DEFAULTS[key])
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args(argv)
    from sipsa_tf.cli import common as cli
    settings = dict(seed=args.seed, n_train=args.n_train, n_road=args.n_road,
                    n_test=args.n_test, ms_size=args.ms_size)

    def body():
        existed = is_generated(args.out_dir, **settings)
        generate(args.out_dir, force=args.force, **settings)
        print("%s synthetic scenes in %s" % ("found" if existed and not args.force else "wrote",
                                             args.out_dir))

    return cli.guarded(body)


if __name__ == "__main__":
    raise SystemExit(main())
