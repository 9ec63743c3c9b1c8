"""Training and test data for SIPSA-Net: finding and checking PAN/MS files, the tf.data pipeline.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md, "Training data", describes the original's pipeline.

Layouts (``.tif`` / ``.tiff`` files):

* **Original layout** (the original training script):
  ``<data>/Trgbn_TRAIN/{RGB,PAN}`` plus ``<data>/Trgbn_TRAIN/{RGB2,PAN2}``, the second set listed
  twice (so its images are drawn twice as often), and a test folder ``<data>/<test folder>/{RGB,PAN}``.
  ``NIR``/``mask`` (``NIR2``/``mask2``) folders may be present; they are not read, because the MS2
  and mask inputs of the original change no output, loss or metric. Files are searched in
  sub-folders too and sorted as the original sorts them (by path length, then name).
* **Flat folder**: ``<folder>/<name>_ms.tif`` and ``<folder>/<name>_pan.tif`` pairs (suffixes are
  case-insensitive), for training (``--data_dir``) or testing (``--test_dir``).

Images: MS ``(h, w, 3)`` (R, G, B), PAN ``(H, W)`` or ``(H, W, 1)``, with ``H // 4 == h`` and
``W // 4 == w`` (PAN is 4x the MS; up to 3 extra PAN rows/columns are cropped, as in the
original). Integer or float TIFFs; values are divided by ``img_div`` (2047 for 11-bit data).
RGB and PAN files are paired by file name (by sorted order, as the original, with
``pair_by_order``). Every file is checked before training starts (:func:`check_pairs`).
"""
import collections
import concurrent.futures
import os

import numpy as np

from sipsa_tf.constants import IMG_DIV, MS_BANDS, SCALE
from sipsa_tf.errors import UserError
from sipsa_tf.io import mat as mat_io
from sipsa_tf.io import pairs
from sipsa_tf.utils import files

TRAIN_FOLDER = "Trgbn_TRAIN"
# The original's training sets: (MS folder, PAN folder); the second one is listed twice.
ORIGINAL_SETS = (("RGB", "PAN"), ("RGB2", "PAN2"), ("RGB2", "PAN2"))
UNUSED_FOLDERS = ("NIR", "mask", "NIR2", "mask2")
EXTENSIONS = (".tif", ".tiff")
FLAT_MS_SUFFIX = "_ms"
FLAT_PAN_SUFFIX = "_pan"
MAX_LISTED_PROBLEMS = 20

Pair = collections.namedtuple("Pair", ["name", "ms", "pan"])
Pair.__doc__ = "An MS/PAN file pair: display name and the two paths."

ImageInfo = collections.namedtuple("ImageInfo", ["pair", "ms_shape", "pan_shape"])


class DataError(UserError):
    """Training or test data that cannot be used; the message names every bad file."""


def _is_image(name):
    return name.lower().endswith(EXTENSIONS)


def _stem(name):
    base = os.path.basename(name)
    for ext in EXTENSIONS:
        if base.lower().endswith(ext):
            return base[:-len(ext)]
    return base


def list_images(folder):
    """TIFF files in ``folder`` and its sub-folders, in the original's order.

    The original sorts folders, and the files of each folder, by (length of name, name).

    Returns:
        List of paths.
    """
    def by_length(items):
        return sorted(items, key=lambda item: (len(item), item))

    folders = [folder]
    for dirpath, dirnames, _ in os.walk(folder):
        folders.extend(os.path.join(dirpath, d) for d in dirnames)
    paths = []
    for sub in by_length(folders):
        paths.extend(os.path.join(sub, n) for n in by_length(os.listdir(sub))
                     if _is_image(n) and os.path.isfile(os.path.join(sub, n)))
    return paths


def _display(path, root):
    try:
        rel = os.path.relpath(path, root)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def pair_folders(ms_dir, pan_dir, root, by_order=False):
    """Pairs the images of an MS folder with those of a PAN folder.

    Args:
        ms_dir, pan_dir: the two folders (sub-folders included).
        root: folder that names are shown relative to.
        by_order: pair the i-th MS file with the i-th PAN file in the original's sort order
            (both folders must hold the same number of files); otherwise pair by relative path
            without extension.

    Returns:
        (pairs, problems): a list of :class:`Pair` and a list of "file: problem" strings.
    """
    ms_files, pan_files = list_images(ms_dir), list_images(pan_dir)
    problems = []
    if by_order:
        if len(ms_files) != len(pan_files):
            problems.append("%s holds %d images but %s holds %d: cannot pair by order"
                            % (_display(ms_dir, root), len(ms_files), _display(pan_dir, root),
                               len(pan_files)))
            return [], problems
        return [Pair(_display(p, root), m, p) for m, p in zip(ms_files, pan_files)], problems

    def keyed(files, folder):
        return {os.path.splitext(os.path.relpath(f, folder))[0]: f for f in files}

    ms_by_key, pan_by_key = keyed(ms_files, ms_dir), keyed(pan_files, pan_dir)
    pairs = []
    for key, pan in pan_by_key.items():
        if key in ms_by_key:
            pairs.append(Pair(_display(pan, root), ms_by_key[key], pan))
        else:
            problems.append("%s: no MS partner in %s (expected a file named %s.tif)"
                            % (_display(pan, root), _display(ms_dir, root), key))
    for key, ms in ms_by_key.items():
        if key not in pan_by_key:
            problems.append("%s: no PAN partner in %s (expected a file named %s.tif)"
                            % (_display(ms, root), _display(pan_dir, root), key))
    return pairs, problems


def flat_pairs(folder, root=None):
    """Pairs ``<name>_ms.tif`` with ``<name>_pan.tif`` in one folder (no sub-folders).

    Returns:
        (pairs, problems) as :func:`pair_folders`.
    """
    root = root or folder
    ms_by_name, pan_by_name, problems = {}, {}, []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if not (_is_image(entry) and os.path.isfile(path)):
            continue
        stem = _stem(entry)
        low = stem.lower()
        if low.endswith(FLAT_MS_SUFFIX):
            ms_by_name[stem[:-len(FLAT_MS_SUFFIX)]] = path
        elif low.endswith(FLAT_PAN_SUFFIX):
            pan_by_name[stem[:-len(FLAT_PAN_SUFFIX)]] = path
        else:
            problems.append("%s: name ends neither in _ms nor in _pan" % _display(path, root))
    pairs = []
    for name, pan in pan_by_name.items():
        if name in ms_by_name:
            pairs.append(Pair(_display(pan, root), ms_by_name[name], pan))
        else:
            problems.append("%s: no MS partner (expected %s_ms.tif)" % (_display(pan, root), name))
    for name, ms in ms_by_name.items():
        if name not in pan_by_name:
            problems.append("%s: no PAN partner (expected %s_pan.tif)" % (_display(ms, root), name))
    return pairs, problems


def _has_flat_images(folder):
    return any(_is_image(n) and _stem(n).lower().endswith((FLAT_MS_SUFFIX, FLAT_PAN_SUFFIX))
               for n in os.listdir(folder))


def _raise(problems, what):
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    text = "; ".join(shown) + ("; and %d more" % more if more > 0 else "")
    if len(problems) == 1:
        raise DataError("%s: %s" % (what, text))
    raise DataError("%d problems in %s: %s" % (len(problems), what, text))


def find_training_pairs(data_dir, pair_by_order=False):
    """Finds the training pairs in the original layout or a flat folder.

    Args:
        data_dir: folder holding ``Trgbn_TRAIN/`` or flat ``<name>_ms.tif``/``<name>_pan.tif``.
        pair_by_order: pair RGB/PAN files by sorted order, as the original (default: by name).

    Returns:
        (pairs, description): list of :class:`Pair` (the second original set appears twice) and a
        one-line description of what was found.

    Raises:
        DataError: no data, or unpaired files (all listed).
    """
    if not os.path.isdir(data_dir):
        raise DataError("training data folder %s does not exist" % data_dir)
    train_root = os.path.join(data_dir, TRAIN_FOLDER)
    if os.path.isdir(train_root):
        pairs, problems, parts = [], [], []
        for index, (ms_name, pan_name) in enumerate(ORIGINAL_SETS):
            ms_dir, pan_dir = os.path.join(train_root, ms_name), os.path.join(train_root, pan_name)
            if not (os.path.isdir(ms_dir) or os.path.isdir(pan_dir)):
                continue
            if not (os.path.isdir(ms_dir) and os.path.isdir(pan_dir)):
                missing = ms_dir if not os.path.isdir(ms_dir) else pan_dir
                if index < 2:
                    problems.append("%s: folder missing (needed beside %s)" % (
                        _display(missing, data_dir),
                        _display(pan_dir if missing == ms_dir else ms_dir, data_dir)))
                continue
            found, issues = pair_folders(ms_dir, pan_dir, data_dir, pair_by_order)
            if index < 2:
                problems.extend(issues)
                parts.append("%d in %s/{%s,%s}" % (len(found), TRAIN_FOLDER, ms_name, pan_name))
            pairs.extend(found)
        if problems:
            _raise(problems, "training data %s" % data_dir)
        if not pairs:
            raise DataError("%s holds no RGB/PAN image pairs (expected %s/RGB and %s/PAN with "
                            ".tif files)" % (train_root, TRAIN_FOLDER, TRAIN_FOLDER))
        unused = [f for f in UNUSED_FOLDERS if os.path.isdir(os.path.join(train_root, f))]
        description = "original layout: %s pairs%s; %d draws per pass%s" % (
            " + ".join(parts), " (second set listed twice)" if len(parts) > 1 else "",
            len(pairs), "; not read: " + ", ".join(unused) if unused else "")
        return pairs, description
    if _has_flat_images(data_dir):
        pairs, problems = flat_pairs(data_dir)
        if problems:
            _raise(problems, "training data %s" % data_dir)
        return pairs, "flat folder: %d <name>_ms/<name>_pan pairs" % len(pairs)
    raise DataError("no training data in %s: expected %s/{RGB,PAN} (the original layout) or "
                    "<name>_ms.tif / <name>_pan.tif pairs" % (data_dir, TRAIN_FOLDER))


def find_test_pairs(test_dir, pair_by_order=False):
    """Finds test pairs in ``<test_dir>/{RGB,PAN}`` or a flat folder of pairs.

    Returns:
        List of :class:`Pair`.

    Raises:
        DataError: missing folder, no images, or unpaired files.
    """
    if not os.path.isdir(test_dir):
        raise DataError("test folder %s does not exist" % test_dir)
    ms_dir, pan_dir = os.path.join(test_dir, "RGB"), os.path.join(test_dir, "PAN")
    if os.path.isdir(ms_dir) or os.path.isdir(pan_dir):
        if not (os.path.isdir(ms_dir) and os.path.isdir(pan_dir)):
            raise DataError("test folder %s has %s but not %s" % (
                test_dir, *(("RGB/", "PAN/") if os.path.isdir(ms_dir) else ("PAN/", "RGB/"))))
        pairs, problems = pair_folders(ms_dir, pan_dir, test_dir, pair_by_order)
    elif _has_flat_images(test_dir):
        pairs, problems = flat_pairs(test_dir)
    else:
        raise DataError("no test images in %s: expected RGB/ and PAN/ folders or "
                        "<name>_ms.tif / <name>_pan.tif pairs" % test_dir)
    if problems:
        _raise(problems, "test data %s" % test_dir)
    if not pairs:
        raise DataError("no test image pairs in %s" % test_dir)
    return pairs


def read_image(path):
    """Reads a TIFF with tifffile.

    Raises:
        ValueError: the file holds no image (tifffile returns an empty array for a TIFF header
            without pages); otherwise whatever tifffile raises for a broken file.
    """
    import tifffile
    image = tifffile.imread(path)
    if np.size(image) == 0:
        raise ValueError("no image in the file")
    return image


def _shape_problems(ms, pan, min_ms_size, size_reason, names):
    """Problems of a decoded pair, each as (which file, text); file None: the text names both."""
    problems = []
    if ms.ndim != 3 or ms.shape[2] != MS_BANDS:
        bands = ms.shape[2] if ms.ndim == 3 else (1 if ms.ndim == 2 else None)
        what = ("%d bands" % bands) if bands is not None else "shape %s" % (ms.shape,)
        problems.append(("ms", "MS has %s, expected (h, w, 3) R, G, B; select 3 bands first "
                         "(python -m sipsa_tf.convert_mat does for .mat files)" % what))
    if not (pan.ndim == 2 or (pan.ndim == 3 and pan.shape[2] == 1)):
        problems.append(("pan", "PAN has shape %s, expected a single band (H, W)" % (pan.shape,)))
    for key, a in (("ms", ms), ("pan", pan)):
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            problems.append((key, "unsupported pixel type %s" % a.dtype))
        elif np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            problems.append((key, "contains NaN or Inf values (%d pixels)"
                             % int(np.size(a) - np.count_nonzero(np.isfinite(a)))))
    if problems:
        return problems
    h, w = ms.shape[:2]
    size = pairs.size_problem(names["pan"], pan.shape, names["ms"], ms.shape,
                              crop=pairs.TRAINING_CROP)
    if size:
        problems.append((None, size))
    elif min(h, w) < min_ms_size:
        problems.append(("ms", "MS is %dx%d, smaller than %dx%d (%s)"
                         % (h, w, min_ms_size, min_ms_size, size_reason)))
    return problems


def check_pair(pair, min_ms_size=1, size_reason="the minimum", root=None):
    """Reads and checks one pair.

    Returns:
        (info, problems): an :class:`ImageInfo` (None if unusable) and "file: problem" strings.
    """
    def shown(path):
        return _display(path, root) if root else path

    arrays, problems = {}, []
    for key in ("ms", "pan"):
        path = getattr(pair, key)
        try:
            arrays[key] = np.asarray(read_image(path))
        except Exception as err:  # tifffile raises many kinds for broken files
            reason = str(err).strip().split("\n")[0] or type(err).__name__
            problems.append("%s: unreadable (%s)" % (shown(path), reason))
    if problems:
        return None, problems
    names = {key: shown(getattr(pair, key)) for key in ("ms", "pan")}
    found = _shape_problems(arrays["ms"], arrays["pan"], min_ms_size, size_reason, names)
    if found:
        return None, [text if key is None else "%s: %s" % (names[key], text)
                      for key, text in found]
    return ImageInfo(pair, arrays["ms"].shape, arrays["pan"].shape), []


def check_pairs(pairs, min_ms_size=1, size_reason="the minimum", what="data", root=None,
                workers=4):
    """Reads every file once and checks it (readable, bands, 4x ratio, size, NaN/Inf).

    Args:
        pairs: list of :class:`Pair` (duplicates are checked once).
        min_ms_size: smallest MS height/width accepted (e.g. the training patch).
        size_reason: why, for the message.
        what: what the pairs are, for the message (e.g. "training data /path").
        root: folder that file names are shown relative to.
        workers: files read in parallel.

    Returns:
        {pair: ImageInfo}.

    Raises:
        DataError: naming every bad file, in one message.
    """
    unique = list(dict.fromkeys(pairs))
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(lambda p: check_pair(p, min_ms_size, size_reason, root), unique))
    problems = [text for _, found in results for text in found]
    if problems:
        _raise(problems, what)
    return {info.pair: info for info, _ in results}


def load_pair(pair, img_div=IMG_DIV):
    """Reads a pair as float32, PAN cropped to 4x the MS as the original's training reader.

    Returns:
        (ms (h, w, 3), pan (4h, 4w, 1)), float32 values / img_div.
    """
    ms = np.asarray(read_image(pair.ms))
    pan = np.asarray(read_image(pair.pan))
    if pan.ndim == 2:
        pan = pan[:, :, None]
    h, w = pan.shape[0] // SCALE, pan.shape[1] // SCALE
    ms = ms[:h, :w, :MS_BANDS].astype(np.float32) / np.float32(img_div)
    pan = pan[:SCALE * h, :SCALE * w, :1].astype(np.float32) / np.float32(img_div)
    return ms, pan


def random_crops(ms, pan, n, patch, rng):
    """``n`` random crops: MS ``patch`` x ``patch`` and PAN 4x that at the same place.

    Offsets are whole MS pixels, uniform over every position (the original's crop).

    Returns:
        ((n, patch, patch, 3), (n, 4 patch, 4 patch, 1)) float32 arrays.
    """
    h, w = ms.shape[:2]
    ys = rng.integers(0, h - patch + 1, size=n)
    xs = rng.integers(0, w - patch + 1, size=n)
    big = SCALE * patch
    ms_crops = np.stack([ms[y:y + patch, x:x + patch] for y, x in zip(ys, xs)])
    pan_crops = np.stack([pan[SCALE * y:SCALE * y + big, SCALE * x:SCALE * x + big]
                          for y, x in zip(ys, xs)])
    return ms_crops, pan_crops


def augment_batch(ms, pan, seed):
    """One random left-right flip and one random rot90 (k in 0..3), shared by the whole batch.

    Args:
        ms: (B, p, p, C) tensor; pan: (B, 4p, 4p, 1) tensor.
        seed: shape [2] int tensor for the stateless random draws.

    Returns:
        The augmented (ms, pan).
    """
    import tensorflow as tf
    draws = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=8, dtype=tf.int32)
    flip = draws[0] % 2
    k = draws[1] % 4

    def apply(x):
        x = tf.cond(flip > 0, lambda: tf.reverse(x, axis=[2]), lambda: x)
        return tf.image.rot90(x, k)

    return apply(ms), apply(pan)


def training_dataset(pairs, patch, crops_per_image=30, batch_size=4, readers=6,
                     shuffle_buffer=300, img_div=IMG_DIV, seed=0, augment=True):
    """The original's training pipeline as tf.data: infinite, batched, augmented.

    Images are drawn in a random order (a new permutation of ``pairs`` on every pass; the
    original draws with replacement), ``readers`` of them are read in parallel, each gives
    ``crops_per_image`` random crops, crops are shuffled in a buffer of ``shuffle_buffer`` and
    batched; each batch gets one random flip + rot90 shared by MS and PAN.

    Args:
        pairs: list of :class:`Pair`, already checked with :func:`check_pairs`.
        patch: MS crop size p (PAN crops are 4p).
        crops_per_image, batch_size, readers, shuffle_buffer: as above.
        img_div: values are DN / img_div.
        seed: makes the stream deterministic.
        augment: apply the flip/rot90 augmentation.

    Returns:
        ``tf.data.Dataset`` of (ms (B, p, p, 3), pan (B, 4p, 4p, 1)) float32.
    """
    import tensorflow as tf
    pairs = list(pairs)
    n = len(pairs)
    big = SCALE * patch

    def load(index, draw):
        ms, pan = load_pair(pairs[int(index)], img_div)
        rng = np.random.default_rng([seed, int(draw)])
        return random_crops(ms, pan, crops_per_image, patch, rng)

    def crops(index, draw):
        ms, pan = tf.numpy_function(load, [index, draw], [tf.float32, tf.float32],
                                    stateful=False)
        ms.set_shape([crops_per_image, patch, patch, MS_BANDS])
        pan.set_shape([crops_per_image, big, big, 1])
        return tf.data.Dataset.from_tensor_slices((ms, pan))

    order = (tf.data.Dataset.range(n)
             .shuffle(n, seed=seed, reshuffle_each_iteration=True)
             .repeat())
    draws = tf.data.Dataset.zip((order, tf.data.Dataset.range(np.iinfo(np.int64).max)))
    ds = draws.interleave(crops, cycle_length=readers, block_length=1,
                          num_parallel_calls=readers, deterministic=True)
    ds = ds.shuffle(shuffle_buffer, seed=seed + 1).batch(batch_size, drop_remainder=True)
    if augment:
        counter = tf.data.Dataset.range(np.iinfo(np.int64).max)
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda batch, i: augment_batch(batch[0], batch[1],
                                           tf.stack([tf.constant(seed, tf.int64), i])))
    return ds.prefetch(2)


# ------------------------------------------------------------------ .mat conversion

DEFAULT_RGB_BANDS = mat_io.DEFAULT_RGB_BANDS  # 1-based R, G, B by MS band count


def convert_mat(mat_path, out_dir, rgb_bands=None, name=None, layout="folders", to_bits=None):
    """Converts a pan-sharpening ``.mat`` file to uint16 TIFFs that the trainer and tests read.

    Keys as in the GRIP-UNINA files: ``I_PAN`` (H, W), ``I_MS_LR`` or ``I_MS`` (h, w, bands) at
    1/4 of the PAN size, optional ``RGB_indexes`` (1-based) and ``L`` (bits per pixel).

    Args:
        mat_path: the ``.mat`` file (read with ``scipy.io.loadmat``).
        out_dir: destination; ``layout='folders'`` writes ``RGB/<name>.tif`` and
            ``PAN/<name>.tif`` (a test folder, or the insides of ``Trgbn_TRAIN``),
            ``'flat'`` writes ``<name>_ms.tif`` and ``<name>_pan.tif``.
        rgb_bands: 1-based band numbers for R, G, B. Default: the file's ``RGB_indexes``, else
            5,3,2 for 8 bands (WorldView-2/3), 3,2,1 for 4 bands (B, G, R, NIR order), 1,2,3
            for 3 bands.
        name: output file name without extension (default: the .mat file's name).
        to_bits: rescale DN from the file's ``L`` bits to this many (e.g. 11 so that the default
            ``--img_div 2047`` applies); default keeps the DN unchanged.

    Returns:
        dict: ms_path, pan_path, rgb_bands, bits (the file's L or None), ms_shape, pan_shape,
        note (advice on --img_div, or "").

    Raises:
        DataError: missing keys, wrong sizes, NaN, bands out of range.
    """
    import tifffile

    image = mat_io.read_mat(mat_path, rgb_bands, error=DataError)
    rgb_bands, bits, ms, pan = image.rgb_bands, image.bits, image.ms, image.pan
    rgb = ms[:, :, [b - 1 for b in rgb_bands]].astype(np.float64)
    pan = pan.astype(np.float64)
    note = ""
    if to_bits is not None:
        if bits is None:
            raise DataError("%s: no L (bits) variable; cannot rescale to %d bits"
                            % (mat_path, to_bits))
        factor = (2.0 ** to_bits - 1) / (2.0 ** bits - 1)
        rgb, pan = rgb * factor, pan * factor
    elif bits is not None and bits != 11:
        note = ("%d-bit data: use --img_div %d (or convert with --to_bits 11)"
                % (bits, 2 ** bits - 1))

    def to_uint16(a):
        return np.clip(np.round(a), 0, np.iinfo(np.uint16).max).astype(np.uint16)

    name = name or os.path.splitext(os.path.basename(mat_path))[0]
    if layout == "folders":
        ms_path = os.path.join(out_dir, "RGB", name + ".tif")
        pan_path = os.path.join(out_dir, "PAN", name + ".tif")
    elif layout == "flat":
        ms_path = os.path.join(out_dir, name + FLAT_MS_SUFFIX + ".tif")
        pan_path = os.path.join(out_dir, name + FLAT_PAN_SUFFIX + ".tif")
    else:
        raise DataError("layout must be 'folders' or 'flat', got %r" % layout)
    for path in (ms_path, pan_path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with files.atomic_paths(ms_path, pan_path) as (ms_tmp, pan_tmp):  # renamed when both exist
        tifffile.imwrite(ms_tmp, to_uint16(rgb), photometric="rgb")
        tifffile.imwrite(pan_tmp, to_uint16(pan), photometric="minisblack")
    return {"ms_path": ms_path, "pan_path": pan_path, "rgb_bands": rgb_bands, "bits": bits,
            "ms_shape": rgb.shape, "pan_shape": pan.shape, "note": note}


def parse_bands(text):
    """'5,3,2' -> (5, 3, 2) (:func:`sipsa_tf.io.pairs.parse_bands`)."""
    return pairs.parse_bands(text, what="--rgb_bands", error=DataError)
