"""Scene-scale SIPSA-Net pan-sharpening: any raster GDAL reads in, GeoTIFF or COG out, tile by tile.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021. The network normalises with local statistics only (9 x 9 Gaussian
moments), so a pixel of the output depends on the inputs within a bounded receptive field
(:data:`RECEPTIVE_FIELD_MS` MS pixels, measured by ``tests/test_scene.py``). The scene is cut into
core tiles of ``tile`` x ``tile`` PAN pixels; each is computed from a window of the scene that
extends the core by a halo of at least the receptive field on every side that is not a scene edge
(windows are clipped to the scene, never padded, so the REFLECT/SAME padding at the scene edges is
the whole image's). The output of the core therefore equals the whole-image output.

The network runs in two stages (:class:`TileModel`). Its MS-resolution part (43% of the FLOPs,
little memory) runs on the whole window; its PAN-resolution tail (57% of the FLOPs, most of the
memory: 64 channels at PAN resolution) runs only on the core, in pieces of at most ``tail_tile``
PAN pixels, each grown by :data:`TAIL_MARGIN` PAN pixels (the tail's receptive field is 3 PAN
pixels). Large tiles thus keep the halo's share of the work small while the pieces bound the
memory. Inputs are read window by window through GDAL (:mod:`sipsa_tf.io.raster`), the output
is written tile by tile into a temporary file renamed into place at the end, so peak memory
depends on the tile sizes and not on the scene size.


The inputs are co-registered from their georeferencing onto the PAN's grid (:mod:`.grid`,
docs/scenes.md). The parts: :mod:`.options`, :mod:`.grid`, :mod:`.plan`, :mod:`.tile_model`,
:mod:`.run`.
"""
from sipsa_tf.constants import MS_BANDS, SCALE  # noqa: F401
from sipsa_tf.scene.options import (  # noqa: F401
    DEFAULT_HALO_MS, DEFAULT_TAIL_TILE, DEFAULT_TILE, MIN_MS_SIZE, RECEPTIVE_FIELD_MS,
    SCAN_ROWS, Inputs, SceneError, SceneOptions, _auto_bits, _check_outputs, _scan_max,
    check_inputs, default_bands, parse_bands)
from sipsa_tf.scene.plan import (  # noqa: F401
    TAIL_MARGIN, _grow, _pieces, axis_plan, plan_tiles, split, tail_box)
from sipsa_tf.scene.tile_model import (  # noqa: F401
    TAIL_INPUTS, TileModel, sharpen_window)
from sipsa_tf.scene.run import (  # noqa: F401
    _Encoder, _Preview, _invalid_mask, pansharpen_scene, print_summary)
