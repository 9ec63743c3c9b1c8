"""Finding training and test images: the original's folder layout and flat pairs.

Part of :mod:`sipsa_tf.data` (layouts described there; docs/design.md, "Training data").
"""
import collections
import os

from sipsa_tf.errors import UserError


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
