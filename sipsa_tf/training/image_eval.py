"""The original's test step: full test images through SIPSA-Net, metrics, stretched PNGs, tables.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md, "Metrics and test images". Per test image: MS
cropped to a multiple of 4 and PAN to a multiple of 16 (as the original does, and said in the log
when it happens), the network output and the aligned MS clipped to [0, 1], the original's two
metric lists ``[ERGAS, SCC, Q, QNR]`` and ``[ERGAS, SCC2(aligned), Q, QNR]``, averaged over the
images.

Images are written as the original writes them: every image 2-98 percentile stretched per channel
(percentiles of the image itself), clipped, times 255 and truncated to 8 bits:

    <name>_03_ours_<stamp>.png           fused output
    <name>_02_msnn_aligned<stamp>.png    aligned MS at PAN resolution (no "_" before the stamp,
                                         as in the original)
    <name>_00_mslr_<stamp>.png           MS input          } only with save_inputs (the original:
    <name>_01_pan_<stamp>.png            PAN input         } first epoch)
    <name>_02_msnn_<stamp>.png           the stretched MS, nearest-upsampled 4x

``<name>`` is the PAN file name without its extension (the original keeps the extension).
The trainer stamps with its run's start time (month-day-hour_minute, as the original);
:func:`evaluate_checkpoint` (``make test-images``) uses no stamp unless asked, so its names are
stable (``<name>_03_ours.png``, ``<name>_02_msnn_aligned.png``) and a rerun overwrites them.
A table per image (CSV and Markdown) with the averages as last row is written beside.
"""
import collections
import csv
import datetime
import io
import os

import numpy as np

from sipsa_tf import data
from sipsa_tf.constants import SCALE
from sipsa_tf.utils import display, files as atomic

STRETCH_PERCENTILES = display.STRETCH_PERCENTILES
STRETCH_EPS = 1.0 / 2 ** 10
METRIC_COLUMNS = ("ergas", "scc", "q", "qnr", "scc2_aligned")
# What the aligned image is (docs/alignment/alignment.md): the feature alignment module's mean
# soft displacement D (MS pixels), its spatial spread (0: the same shift everywhere) and the mean
# largest of its 81 tap weights (1: one-hot, a pure shift).
FAM_COLUMNS = ("fam_dy", "fam_dx", "fam_spread", "fam_max_tap")
FAM_NOTE = ("FAM: D = sum_k p_k (dy_k, dx_k), where, in the MS, the aligned image reads each "
            "pixel from (MS pixels, mean over the image); spread of D 0 = the same shift "
            "everywhere; largest tap 1 = one-hot, a pure shift (docs/alignment/alignment.md).")
# The smallest MS side after cropping: the original's Q index pads 32 x 32 blocks by reflection.
MIN_TEST_MS_SIZE = 12

TestOps = collections.namedtuple(
    "TestOps", ["ms", "pan", "output", "aligned", "align_x", "align_o", "displacement",
                "max_tap"])
TestOps.__doc__ = """Test tensors: placeholders ms (1, h, w, 3) and pan (1, 4h, 4w, 1); output and
aligned (1, 4h, 4w, 3) clipped to [0, 1]; align_x and align_o the original's metric lists;
displacement (1, h, w, 2) the FAM's soft displacement D and max_tap (1, h, w) its largest tap."""

Scene = collections.namedtuple("Scene", ["name", "ms", "pan", "note"])
Scene.__doc__ = """A test image ready for the network: ms (1, h, w, 3), pan (1, 4h, 4w, 1)
float32 values / img_div, cropped; note says what was cropped ("" if nothing)."""

TestResult = collections.namedtuple("TestResult", ["rows", "mean_x", "mean_o", "panels", "files"])
TestResult.__doc__ = """rows: one dict per image (name, sizes, cropped, the metric and FAM columns);
mean_x, mean_o: the averaged metric lists (4 floats each); panels: list of (name, uint8
(H, 4 W, 3) MS|PAN|aligned|output panel); files: paths written."""


def build_test_ops(**forward_options):
    """Builds the test subgraph in the current graph (network variables shared by name).

    Args:
        forward_options: the forward-graph options of :func:`sipsa_tf.core.model.forward`
            (``align_statistics``, ``fam_flat_mean``; default: the original graph).

    Returns:
        :class:`TestOps`.
    """
    import tensorflow as tf
    from sipsa_tf.core import metrics, model, ops as core_ops

    ms = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name="ms_test")
    pan = tf.compat.v1.placeholder(tf.float32, [1, None, None, 1], name="pan_test")
    fwd = model.forward(ms, pan, **forward_options)
    output = tf.clip_by_value(fwd.output, 0.0, 1.0)
    aligned = tf.clip_by_value(fwd.aligned, 0.0, 1.0)
    align_x, align_o = metrics.test_metrics(output, aligned, ms, pan)
    fam = core_ops.fam_alignment(fwd.kernel)
    return TestOps(ms, pan, output, aligned, align_x, align_o, fam["displacement"],
                   fam["max_tap"])


def crop_for_test(ms, pan):
    """The original's test crop: MS to a multiple of 4, PAN to a multiple of 16.

    Args:
        ms: (h, w, 3) array; pan: (H, W) or (H, W, 1) array, H // 4 == h, W // 4 == w.

    Returns:
        (ms, pan (H', W', 1), note) where note describes the crop ("" if none).
    """
    if pan.ndim == 2:
        pan = pan[:, :, None]
    h, w = (ms.shape[0] // SCALE) * SCALE, (ms.shape[1] // SCALE) * SCALE
    ph, pw = (pan.shape[0] // SCALE ** 2) * SCALE ** 2, (pan.shape[1] // SCALE ** 2) * SCALE ** 2
    notes = []
    if (h, w) != ms.shape[:2]:
        notes.append("MS %dx%d -> %dx%d" % (ms.shape[0], ms.shape[1], h, w))
    if (ph, pw) != pan.shape[:2]:
        notes.append("PAN %dx%d -> %dx%d" % (pan.shape[0], pan.shape[1], ph, pw))
    return ms[:h, :w], pan[:ph, :pw], ", ".join(notes)


def load_scenes(pairs, img_div=data.IMG_DIV):
    """Reads and crops the test pairs (checked beforehand with :func:`data.check_pairs`).

    Returns:
        List of :class:`Scene`.
    """
    scenes = []
    for pair in pairs:
        ms = np.asarray(data.read_image(pair.ms))[..., :3]
        pan = np.asarray(data.read_image(pair.pan))
        ms, pan, note = crop_for_test(ms, pan)
        name = os.path.splitext(os.path.basename(pair.pan))[0]
        scenes.append(Scene(name, (ms.astype(np.float32) / np.float32(img_div))[None],
                            (pan.astype(np.float32) / np.float32(img_div))[None], note))
    return scenes


def check_and_load(test_dir, img_div=data.IMG_DIV, pair_by_order=False):
    """Finds, checks (every file) and loads a test folder.

    Raises:
        data.DataError: naming every bad file.
    """
    pairs = data.find_test_pairs(test_dir, pair_by_order)
    data.check_pairs(pairs, MIN_TEST_MS_SIZE + SCALE - 1,
                     "the test step needs at least %d x %d MS pixels after cropping to a "
                     "multiple of 4" % (MIN_TEST_MS_SIZE, MIN_TEST_MS_SIZE),
                     what="test data %s" % test_dir, root=test_dir)
    return load_scenes(pairs, img_div)


def percent_stretch(x):
    """The original's display stretch: per channel 2-98 percentiles of x itself, to uint8.

    (x - p2) / max(p98 - p2, 2^-10) after clipping to [p2, p98], then times 255 and truncated.

    Args:
        x: (H, W) or (H, W, C) array (C > 3: the first 3 channels are kept).

    Returns:
        uint8 array of the same height and width.
    """
    y = np.squeeze(np.asarray(x))
    if y.ndim == 3:
        y = y[:, :, :3]
    low, high = np.percentile(y, STRETCH_PERCENTILES, axis=(0, 1))
    return display.stretch(y, low, high, STRETCH_EPS, np.float32, original=True)


def nearest_up(img, scale=SCALE):
    """Nearest-neighbour upsampling of an (h, w[, c]) image by an integer factor."""
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def png_name(base, kind, stamp, separator="_"):
    """``<base>_<kind>[<separator><stamp>].png``: the original's names (its aligned image has
    no "_" before the stamp); without a stamp, stable names that a rerun overwrites."""
    return "%s_%s%s.png" % (base, kind, separator + stamp if stamp else "")


def make_stamp(now=None):
    """The original's file-name stamp, month-day-hour_minute."""
    return (now or datetime.datetime.now()).strftime("%m-%d-%H_%M")


def _panel(ms8, pan8, aligned8, out8):
    grey = np.repeat(pan8[:, :, None], 3, axis=2)
    return np.concatenate([nearest_up(ms8), grey, aligned8, out8], axis=1)


def _save_png(array, path):
    from PIL import Image
    with atomic.atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path


def run_test_set(session, ops, scenes, out_dir, stamp, save_inputs=False, panels=1,
                 table_name="metrics", log=None, feed_extra=None):
    """Runs the test step on every scene and writes PNGs and the metrics tables.

    Args:
        session: a session whose graph holds ``ops`` with the weights to test.
        ops: :class:`TestOps`.
        scenes: list of :class:`Scene`.
        out_dir: folder for the PNGs and tables (created).
        stamp: string in the file names.
        save_inputs: also write the _00_mslr_, _01_pan_ and _02_msnn_ images.
        panels: how many MS|PAN|aligned|output panels to return (for TensorBoard).
        table_name: tables are ``<table_name>.csv`` and ``<table_name>.md``.
        log: callable taking one line, for crop notes.
        feed_extra: extra feed_dict entries.

    Returns:
        :class:`TestResult`.
    """
    os.makedirs(out_dir, exist_ok=True)
    rows, files, panel_list = [], [], []
    sum_x, sum_o = np.zeros(4, np.float64), np.zeros(4, np.float64)
    for scene in scenes:
        if scene.note and log:
            log("test image %s cropped: %s" % (scene.name, scene.note))
        feed = {ops.ms: scene.ms, ops.pan: scene.pan}
        feed.update(feed_extra or {})
        output, aligned, align_x, align_o, disp, max_tap = session.run(
            [ops.output, ops.aligned, ops.align_x, ops.align_o, ops.displacement, ops.max_tap],
            feed)
        align_x = np.asarray(align_x, np.float64)
        align_o = np.asarray(align_o, np.float64)
        sum_x += align_x
        sum_o += align_o
        out8, aligned8 = percent_stretch(output), percent_stretch(aligned)
        base = os.path.join(out_dir, scene.name)
        files.append(_save_png(out8, png_name(base, "03_ours", stamp)))
        files.append(_save_png(aligned8, png_name(base, "02_msnn_aligned", stamp, "")))
        ms8, pan8 = percent_stretch(scene.ms), percent_stretch(scene.pan)
        if save_inputs:
            files.append(_save_png(ms8, png_name(base, "00_mslr", stamp)))
            files.append(_save_png(pan8, png_name(base, "01_pan", stamp)))
            files.append(_save_png(nearest_up(ms8), png_name(base, "02_msnn", stamp)))
        if len(panel_list) < panels:
            panel_list.append((scene.name, _panel(ms8, pan8, aligned8, out8)))
        rows.append({"image": scene.name,
                     "ms_size": "%dx%d" % scene.ms.shape[1:3],
                     "pan_size": "%dx%d" % scene.pan.shape[1:3],
                     "cropped": scene.note or "-",
                     "ergas": align_x[0], "scc": align_x[1], "q": align_x[2], "qnr": align_x[3],
                     "scc2_aligned": align_o[1]})
        rows[-1].update(zip(FAM_COLUMNS, fam_summary(disp[0], max_tap[0])))
    count = max(len(scenes), 1)
    mean_x, mean_o = sum_x / count, sum_o / count
    files.extend(write_tables(rows, mean_x, mean_o, os.path.join(out_dir, table_name)))
    return TestResult(rows, mean_x, mean_o, panel_list, files)


def fam_summary(displacement, max_tap):
    """(mean dy, mean dx, spread of D, mean largest tap) of one image's FAM.

    Args:
        displacement: (h, w, 2) soft displacement D, MS pixels.
        max_tap: (h, w) largest softmax weight per pixel, in (0, 1].
    """
    from sipsa_tf.evaluation import alignment
    summary = alignment.summary(displacement, max_tap)
    return tuple(summary[key] for key in ("d_mean_y", "d_mean_x", "spread", "max_tap"))


def write_tables(rows, mean_x, mean_o, base):
    """Writes ``base.csv`` and ``base.md``: one row per image, then the averages.

    Returns:
        The two paths.
    """
    numbers = METRIC_COLUMNS + FAM_COLUMNS
    columns = ("image", "ms_size", "pan_size", "cropped") + numbers
    average = {"image": "average (%d images)" % len(rows), "ms_size": "", "pan_size": "",
               "cropped": "", "ergas": mean_x[0], "scc": mean_x[1], "q": mean_x[2],
               "qnr": mean_x[3], "scc2_aligned": mean_o[1]}
    average.update({c: float(np.mean([r[c] for r in rows])) if rows else float("nan")
                    for c in FAM_COLUMNS})

    def cell(row, col, digits):
        value = row[col]
        return ("%.*f" % (digits, value)) if col in numbers else str(value)

    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(columns)
    for row in rows + [average]:
        writer.writerow([cell(row, c, 6) for c in columns])
    atomic.write_text(base + ".csv", table.getvalue())
    header = ("| image | MS | PAN | cropped | ERGAS | SCC | Q | QNR | SCC2 (aligned) "
              "| FAM mean dy | FAM mean dx | spread of D | largest tap |\n"
              "| --- | --- | --- | --- |" + " ---: |" * len(numbers) + "\n")
    atomic.write_text(base + ".md", header + "".join(
        "| " + " | ".join(cell(row, c, 4) for c in columns) + " |\n"
        for row in rows + [average]) + "\n" + FAM_NOTE + "\n")
    return [base + ".csv", base + ".md"]


def metric_lines(mean_x, mean_o):
    """The original's two summary lines."""
    return [("[Align X] AVG ERGAS: %.3f\t SCC: %.3f\t Q: %.3f\t QNR: %.3f #####"
             % tuple(mean_x)),
            ("[4ch SCC] AVG ERGAS: %.3f\t SCC: %.3f\t Q: %.3f\t QNR: %.3f #####"
             % tuple(mean_o))]


def evaluate_checkpoint(checkpoint, test_dir, out_dir, img_div=data.IMG_DIV, stamp="",
                        pair_by_order=False, log=print):
    """Restores a checkpoint's network and runs the test step on a test folder.

    Args:
        checkpoint: prefix or directory (``checkpoints.resolve``); only ``op_net/G/*`` is read.
        test_dir: ``<dir>/{RGB,PAN}`` or a flat folder of ``<name>_ms.tif``/``<name>_pan.tif``.
        out_dir: where the PNGs and ``metrics.csv`` / ``metrics.md`` go.
        img_div: values are DN / img_div.
        stamp: file-name stamp; empty (the default): none, so that a rerun overwrites.
        pair_by_order: pair RGB/PAN files by sorted order instead of by name.
        log: callable for progress lines.

    Returns:
        :class:`TestResult`.

    Raises:
        data.DataError, checkpoints.CheckpointError.
    """
    import tensorflow as tf
    from sipsa_tf import checkpoints, inference
    from sipsa_tf.core import network

    prefix = checkpoints.resolve(checkpoint)
    scenes = check_and_load(test_dir, img_div, pair_by_order)
    graph = tf.Graph()
    with graph.as_default():
        ops = build_test_ops(**checkpoints.forward_options(prefix))
        variables = network.network_variables(graph)
        with tf.compat.v1.Session(graph=graph, config=inference.make_session_config()) as session:
            checkpoints.restore(session, prefix, variables)
            graph.finalize()
            log("checkpoint %s; %d test images from %s" % (prefix, len(scenes), test_dir))
            result = run_test_set(session, ops, scenes, out_dir, stamp, save_inputs=True,
                                  log=log)
    for line in metric_lines(result.mean_x, result.mean_o):
        log(line)
    log("wrote %d files to %s (metrics.csv, metrics.md)" % (len(result.files), out_dir))
    return result
