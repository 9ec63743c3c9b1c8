"""External pan-sharpening baselines run through other programs: GDAL's pansharpening.

SIPSA-Net (J. Lee, S. Seo, M. Kim, "SIPSA-Net: Shift-Invariant Pan Sharpening with Moving Object
Alignment for Satellite Imagery", CVPR 2021) is compared here with an implementation that is not
ours: GDAL's ``VRTPansharpenedDataset`` (GDAL >= 2.1), whose default algorithm is the weighted
Brovey transform,

    F_k = MS~_k * PAN / sum_j(w_j MS~_j),   MS~ = MS resampled to the PAN grid (cubic by default),

with equal weights w_j = 1 / C unless given. The reduced- and full-resolution protocols in which it
is evaluated are those of Vivone et al. (IEEE TGRS 2015; IEEE GRSM 2021), see
:mod:`sipsa_tf.evaluation.quality`.

How it runs: the MS and PAN arrays are written as float32 GeoTIFFs (with :mod:`tifffile`) into a
temporary folder, with a pixel size of ``ratio`` units for the MS and 1 unit for the PAN and the
same origin, so that GDAL places both on the same ground extent; a VRT file describing the
pansharpened dataset is written beside them, ``gdal_translate`` materialises it as a GeoTIFF and
the result is read back. Only the ``gdal_translate`` program is needed (Debian/Ubuntu package
``gdal-bin``), not GDAL's Python bindings. When it cannot be found the method raises
:class:`GdalUnavailable` with the reason, which the evaluation reports as a skipped method:
nothing is ever substituted for GDAL's result.

Interface, as :func:`sipsa_tf.evaluation.baselines.fuse`: ``fuse_gdal(ms, pan, ratio=4) -> (H, W, C)
float32``; ``METHODS`` maps ``'gdal'`` to it.
"""
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import numpy as np

from sipsa_tf.errors import InputError
from sipsa_tf.io import pairs

__all__ = ["GdalUnavailable", "GdalError", "GDAL_TRANSLATE", "gdal_status", "gdal_available",
           "pansharpen_vrt", "fuse_gdal", "METHODS", "fuse"]

GDAL_TRANSLATE = "gdal_translate"
ALGORITHMS = ("WeightedBrovey",)
RESAMPLINGS = ("Nearest", "Bilinear", "Cubic", "CubicSpline", "Lanczos", "Average")
TIMEOUT_SECONDS = 300

# GeoTIFF tags: ModelPixelScaleTag, ModelTiepointTag, GeoKeyDirectoryTag (GTRasterTypeGeoKey =
# RasterPixelIsArea). Enough for GDAL to derive a geotransform; no coordinate system is needed.
_PIXEL_SCALE_TAG = 33550
_TIEPOINT_TAG = 33922
_GEOKEY_DIRECTORY_TAG = 34735
_GEOKEYS_PIXEL_IS_AREA = (1, 1, 0, 1, 1025, 0, 1, 1)


class GdalUnavailable(RuntimeError):
    """GDAL's ``gdal_translate`` cannot be run here; the message says why."""


class GdalError(RuntimeError):
    """``gdal_translate`` ran and failed; the message holds its error output."""


def gdal_status(executable=GDAL_TRANSLATE):
    """Says whether GDAL's pansharpening can be run, and which GDAL it is.

    Args:
        executable: program name or path of ``gdal_translate``.

    Returns:
        ``(available, text)``: True and the ``--version`` line (e.g. ``"GDAL 3.6.2, released
        2023/01/02"``), or False and the reason it is not available.
    """
    path = shutil.which(executable)
    if path is None:
        return False, ("%s not found on PATH (install GDAL's command-line tools, e.g. the Debian "
                       "package gdal-bin)" % executable)
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return False, "%s cannot be run: %s" % (path, err)
    if done.returncode != 0:
        return False, "%s --version failed: %s" % (path, (done.stderr or done.stdout).strip())
    return True, done.stdout.strip()


def gdal_available(executable=GDAL_TRANSLATE):
    """True if :func:`fuse_gdal` can run (``gdal_translate`` found and working)."""
    return gdal_status(executable)[0]


def _geotags(pixel_size):
    """tifffile ``extratags`` giving a north-up geotransform with origin (0, 0)."""
    return [
        (_PIXEL_SCALE_TAG, "d", 3, (float(pixel_size), float(pixel_size), 0.0), True),
        (_TIEPOINT_TAG, "d", 6, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0), True),
        (_GEOKEY_DIRECTORY_TAG, "H", len(_GEOKEYS_PIXEL_IS_AREA), _GEOKEYS_PIXEL_IS_AREA, True),
    ]


def pansharpen_vrt(pan_file, ms_file, n_bands, algorithm="WeightedBrovey", weights=None,
                   resampling="Cubic", threads=1):
    """The XML of a GDAL ``VRTPansharpenedDataset`` fusing ``ms_file`` with ``pan_file``.

    File names are written relative to the VRT (``relativeToVRT="1"``).

    Args:
        pan_file: PAN GeoTIFF name (band 1 is used).
        ms_file: MS GeoTIFF name with ``n_bands`` bands.
        n_bands: number of MS bands; output band k is MS band k pansharpened.
        algorithm: GDAL's pansharpening algorithm (GDAL 3.x knows only 'WeightedBrovey').
        weights: one weight per MS band for the synthetic intensity; None = GDAL's default,
            1 / n_bands each.
        resampling: how GDAL resamples the MS to the PAN grid (one of ``RESAMPLINGS``).
        threads: GDAL worker threads (an integer, or 'ALL_CPUS').

    Returns:
        str: the VRT document.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError("algorithm must be one of %s, got %r" % (", ".join(ALGORITHMS),
                                                                  algorithm))
    if resampling not in RESAMPLINGS:
        raise ValueError("resampling must be one of %s, got %r" % (", ".join(RESAMPLINGS),
                                                                   resampling))
    root = ET.Element("VRTDataset", subClass="VRTPansharpenedDataset")
    opts = ET.SubElement(root, "PansharpeningOptions")
    ET.SubElement(opts, "Algorithm").text = algorithm
    if weights is not None:
        weights = [float(w) for w in weights]
        if len(weights) != n_bands:
            raise ValueError("%d weights given for %d MS bands" % (len(weights), n_bands))
        algo_opts = ET.SubElement(opts, "AlgorithmOptions")
        ET.SubElement(algo_opts, "Weights").text = ",".join(repr(w) for w in weights)
    ET.SubElement(opts, "Resampling").text = resampling
    ET.SubElement(opts, "NumThreads").text = str(threads)
    panchro = ET.SubElement(opts, "PanchroBand")
    ET.SubElement(panchro, "SourceFilename", relativeToVRT="1").text = pan_file
    ET.SubElement(panchro, "SourceBand").text = "1"
    for band in range(1, n_bands + 1):
        spectral = ET.SubElement(opts, "SpectralBand", dstBand=str(band))
        ET.SubElement(spectral, "SourceFilename", relativeToVRT="1").text = ms_file
        ET.SubElement(spectral, "SourceBand").text = str(band)
    return ET.tostring(root, encoding="unicode")


def _check_inputs(ms, pan, ratio):
    ms, pan, ratio = pairs.check_arrays(ms, pan, ratio, finite=True, error=InputError)
    return ms.astype(np.float32), pan.astype(np.float32), ratio


def fuse_gdal(ms, pan, ratio=4, weights=None, resampling="Cubic", threads=1,
              executable=GDAL_TRANSLATE, timeout=TIMEOUT_SECONDS):
    """Pan-sharpens with GDAL's weighted Brovey (``gdal_translate`` on a pansharpened VRT).

    Args:
        ms: (h, w, C) multispectral image, any real dtype and scale (sent as float32).
        pan: (ratio*h, ratio*w) or (ratio*h, ratio*w, 1) panchromatic image, same scale.
        ratio: PAN/MS scale ratio (the MS pixel is ``ratio`` PAN pixels on the ground).
        weights: per-band weights of the synthetic intensity (default: GDAL's 1 / C each).
        resampling: MS resampling to the PAN grid, one of ``RESAMPLINGS`` (GDAL's default Cubic).
        threads: GDAL worker threads.
        executable: name or path of ``gdal_translate``.
        timeout: seconds before ``gdal_translate`` is abandoned.

    Returns:
        (ratio*h, ratio*w, C) float32 array in the scale of the inputs.

    Raises:
        ValueError: inconsistent shapes, non-finite values.
        GdalUnavailable: ``gdal_translate`` not found or not working (nothing is computed).
        GdalError: ``gdal_translate`` failed (its message is included).
    """
    ms, pan, ratio = _check_inputs(ms, pan, ratio)
    available, reason = gdal_status(executable)
    if not available:
        raise GdalUnavailable(reason)
    import tifffile

    n_bands = ms.shape[2]
    with tempfile.TemporaryDirectory(prefix="sipsa-gdal-") as tmp:
        tifffile.imwrite(os.path.join(tmp, "pan.tif"), pan, photometric="minisblack",
                         extratags=_geotags(1.0))
        tifffile.imwrite(os.path.join(tmp, "ms.tif"),
                         np.ascontiguousarray(np.moveaxis(ms, 2, 0)),
                         photometric="minisblack", planarconfig="separate",
                         extratags=_geotags(float(ratio)))
        vrt = os.path.join(tmp, "pansharpened.vrt")
        with open(vrt, "w", encoding="utf-8") as f:
            f.write(pansharpen_vrt("pan.tif", "ms.tif", n_bands, weights=weights,
                                   resampling=resampling, threads=threads))
        out = os.path.join(tmp, "fused.tif")
        command = [shutil.which(executable), "-q", "-of", "GTiff", vrt, out]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired as err:
            raise GdalError("gdal_translate did not finish in %d s" % timeout) from err
        if done.returncode != 0 or not os.path.exists(out):
            raise GdalError("gdal_translate failed (exit %d): %s"
                            % (done.returncode, (done.stderr or done.stdout).strip()))
        fused = np.asarray(tifffile.imread(out), dtype=np.float32)
    if fused.ndim == 2:
        fused = fused[:, :, np.newaxis]
    if fused.shape != (pan.shape[0], pan.shape[1], n_bands):
        raise GdalError("gdal_translate returned shape %s, expected %s"
                        % (fused.shape, (pan.shape[0], pan.shape[1], n_bands)))
    return fused


METHODS = {"gdal": fuse_gdal}


def fuse(method, ms, pan, ratio=4, **kw):
    """Runs one of the external ``METHODS`` with the interface of ``baselines.fuse``.

    Raises:
        ValueError: unknown method; and as the method itself.
    """
    if method not in METHODS:
        raise ValueError("unknown external method %r; choose one of %s"
                         % (method, ", ".join(sorted(METHODS))))
    return METHODS[method](ms, pan, ratio, **kw)
