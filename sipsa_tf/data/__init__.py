"""Training and test data for SIPSA-Net: finding and checking PAN/MS files, the tf.data pipeline.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md, "Training data", describes the original's pipeline.

Layouts (``.tif`` / ``.tiff`` files):

* **Original layout** (the original training script):
  ``<data>/Trgbn_TRAIN/{RGB,PAN}`` plus ``<data>/Trgbn_TRAIN/{RGB2,PAN2}``, the second set listed
  twice (so its images are drawn twice as often), and a test folder
  ``<data>/<test folder>/{RGB,PAN}``.
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


The parts: :mod:`.discovery`, :mod:`.checks`, :mod:`.pipeline`, :mod:`.convert`.
"""
from sipsa_tf.constants import IMG_DIV, MS_BANDS, SCALE  # noqa: F401
from sipsa_tf.data.discovery import (  # noqa: F401
    DataError, EXTENSIONS, FLAT_MS_SUFFIX, FLAT_PAN_SUFFIX, MAX_LISTED_PROBLEMS, ORIGINAL_SETS,
    Pair, TRAIN_FOLDER, UNUSED_FOLDERS, _display, _has_flat_images, _is_image, _raise, _stem,
    find_test_pairs, find_training_pairs, flat_pairs, list_images, pair_folders)
from sipsa_tf.data.checks import (  # noqa: F401
    ImageInfo, _shape_problems, check_pair, check_pairs, load_pair, read_image)
from sipsa_tf.data.pipeline import (  # noqa: F401
    augment_batch, random_crops, training_dataset)
from sipsa_tf.data.convert import (  # noqa: F401
    DEFAULT_RGB_BANDS, convert_mat, parse_bands)
