"""Command line: pan-sharpen a scene with SIPSA-Net (Lee, Seo, Kim, CVPR 2021).

    python -m sipsa_tf.pansharpen --checkpoint=checkpoints/wald_stage1j \\
        --pan=pan.tif --ms=ms.tif --out=out.tif [--bands=5,3,2] [--bits=11] \\
        [--aligned_out=aligned.tif] [--preview=preview.png]
    python -m sipsa_tf.pansharpen --checkpoint=... --pairs=scenes.csv \\
        [--workers=N | --scheduler=tcp://host:8786]     # on a Dask cluster

Also installed as the console script ``sipsa-pansharpen``. Flags only; the work is done by
:func:`sipsa_tf.scene.pansharpen_scene` (one scene, this process) or
:func:`sipsa_tf.scene.cluster.pansharpen_job` (``--pairs``, ``--workers``, ``--scheduler``).
Bad input prints one line ``error: ...`` on stderr and exits with status 1 (inputs are checked
before TensorFlow is loaded); Ctrl-C (or SIGTERM) exits with status 130 and says which outputs,
if any, were complete before it; neither leaves partial files behind. The graph is built in its
own ``tf.Graph``, so TensorFlow's v2 behaviour needs no switching off.
"""
import os
import time

from absl import flags

from sipsa_tf import checkpoint_paths
from sipsa_tf.cli import common as cli
from sipsa_tf.scene.options import SceneOptions, parse_bands  # no TensorFlow

# duplicates pairs these flag definitions with other command lines' (same shape: name, the
# library's default, help text); they are declarations, one per flag, not repeated logic.
_D = SceneOptions()

flags.DEFINE_string("checkpoint", checkpoint_paths.default_checkpoint(), "Checkpoint prefix "
                    "or directory (only op_net/G/* is read; the original's model-100000 works "
                    "too). Default: the bundled one.")
flags.DEFINE_string("pan", None, "PAN raster, one band: any format GDAL reads (GeoTIFF, COG, "
                    "JPEG 2000, NITF, DIMAP, .TIL, VRT; docs/scenes.md).")
flags.DEFINE_string("ms", None, "MS raster, 3 or more bands, same data type as the PAN, pixels "
                    "4x the PAN's: co-registered from the georeferencing (else exactly 4x "
                    "smaller in pixels).")
flags.DEFINE_string("out", None, "Output GeoTIFF: 3 bands on the PAN's grid (whole MS pixels, "
                    "per --extent), the PAN's georeferencing, tiled and deflate-compressed "
                    "(--cog: a Cloud-Optimised GeoTIFF).")
flags.DEFINE_enum("extent", _D.extent, ["intersection", "pan"], "Output extent of a "
                  "georeferenced pair: the whole MS pixels both cover, or the PAN's (padded "
                  "with nodata where the MS is missing). A line says what was cropped/padded.")
flags.DEFINE_enum("resampling", _D.resampling, ["bilinear", "cubic"], "How the MS is resampled "
                  "onto the PAN's grid where the grids do not coincide (GDAL's warper).")
flags.DEFINE_bool("cog", _D.cog, "Write the output (and --aligned_out) as Cloud-Optimised "
                  "GeoTIFFs with averaged internal overviews.")
flags.DEFINE_integer("cog_blocksize", _D.cog_blocksize, "Tile size of the COG in pixels.")
flags.DEFINE_enum("cog_compress", _D.cog_compress, ["deflate", "zstd", "lzw", "none"],
                  "Compression of the COG (with the predictor).")
flags.DEFINE_string("bands", None, "The 3 MS bands used, 1-based, in the order the network "
                    "takes them (R,G,B), e.g. 5,3,2 for 8-band WorldView-2/3. Default: 1,2,3 "
                    "for a 3-band MS; 3,2,1 (4 bands) and 5,3,2 (8 bands) with a warning; "
                    "other band counts need it.")
flags.DEFINE_integer("bits", _D.bits, "Bits per sample: values are DN / (2^bits - 1). 0: "
                     "GDAL's NBITS metadata where the files have it, else uint8 "
                     "-> 8; uint16/int16 -> 11 if no valid value exceeds 2047, 12 if none "
                     "exceeds 4095, else 16 (int16: 15); float32 input needs it.")
flags.DEFINE_float("nodata", None, "Nodata value (default: the PAN's, if any). Pixels where "
                   "the PAN or any used MS band has it, or their masks say invalid, are nodata "
                   "in the output.")
flags.DEFINE_integer("tile", _D.tile, "Tile side in PAN pixels (multiple of 16): the output's "
                     "TIFF tile size; the network's MS-resolution part runs on a tile plus halo.")
flags.DEFINE_integer("tail_tile", _D.tail_tile, "Largest piece (PAN pixels) on which the "
                     "network's PAN-resolution part runs; with --tile it sets the peak memory.")
flags.DEFINE_integer("halo", _D.halo, "Halo around each tile in MS pixels (>= the receptive "
                     "field, 31).")
flags.DEFINE_enum("out_type", _D.out_type, ["native", "float32"], "Output type: the input's "
                  "type (DN rounded and clipped) or float32 (DN, unrounded).")
flags.DEFINE_string("aligned_out", None, "Also write the MS aligned to the PAN (GeoTIFF, or COG "
                    "with --cog).")
flags.DEFINE_string("preview", None, "Also write an 8-bit PNG preview (2-98% stretch).")
flags.DEFINE_integer("preview_size", _D.preview_size, "Longest side of the preview in pixels.")
flags.DEFINE_integer("threads", _D.threads, "TensorFlow intra-op threads (0: default).")
flags.DEFINE_enum("progress", _D.progress, ["auto", "on", "off"], "Progress bar on stderr.")
flags.DEFINE_string("scheduler", None, "Run the tiles on this Dask scheduler (e.g. "
                    "tcp://host:8786); workers must see the same input, output and checkpoint "
                    "paths. Needs pip install 'sipsa-tf[dask]'.")
flags.DEFINE_integer("workers", 0, "Run the tiles on a Dask LocalCluster of this many worker "
                     "processes (each with its share of the cores unless --threads is given).")
flags.DEFINE_string("pairs", None, "CSV file of scenes, one 'pan,ms,out' per line (relative "
                    "to the file's folder), run as one job; replaces --pan, --ms and --out.")
flags.DEFINE_string("precision", _D.precision, "float32 (the faithful port), bfloat16 or float16: "
                    "the dtype of the network's convolutions; normalisation, softmax and the "
                    "alignment module stay float32 (docs/performance.md, \"Precision\").")

FLAGS = flags.FLAGS


def interrupted_line(outputs, start):
    """The line printed on Ctrl-C: which of ``outputs`` this run completed (renamed into place
    since ``start``, a ``time.time()``), since an interrupt can come after some are done (the
    scenes of --pairs, or the cluster's shutdown)."""
    written = [p for p in outputs
               if os.path.exists(p) and os.path.getmtime(p) >= int(start)]
    if not written:
        return "interrupted; no output written"
    return "interrupted; complete: %s; nothing else written" % ", ".join(written)


def _say(line):
    print(line, flush=True)


def _pansharpen(outputs):
    from sipsa_tf.errors import UserError
    if FLAGS.pairs:
        if FLAGS.pan or FLAGS.ms or FLAGS.out:
            raise UserError("--pairs replaces --pan, --ms and --out; give one or the other")
    else:
        cli.require(FLAGS, "pan", "ms", "out")
    options = SceneOptions(
        bands=parse_bands(FLAGS.bands) if FLAGS.bands else None, bits=FLAGS.bits,
        nodata=FLAGS.nodata,
        tile=FLAGS.tile, tail_tile=FLAGS.tail_tile, halo=FLAGS.halo, out_type=FLAGS.out_type,
        aligned_out=FLAGS.aligned_out, preview=FLAGS.preview,
        preview_size=FLAGS.preview_size, threads=FLAGS.threads, progress=FLAGS.progress,
        precision=FLAGS.precision, extent=FLAGS.extent, resampling=FLAGS.resampling,
        cog=FLAGS.cog, cog_blocksize=FLAGS.cog_blocksize, cog_compress=FLAGS.cog_compress)
    options.validate()  # the flags' values, then the checkpoint's path
    checkpoint = checkpoint_paths.check(FLAGS.checkpoint)  # before TensorFlow is imported
    from sipsa_tf import scene  # imports TensorFlow only once the inputs are checked
    if not (FLAGS.pairs or FLAGS.scheduler or FLAGS.workers):
        outputs.extend(options.outputs(FLAGS.out))
        summary = scene.pansharpen_scene(checkpoint, FLAGS.pan, FLAGS.ms, FLAGS.out,
                                         options, say=_say)
        scene.print_summary(summary)
        return
    from sipsa_tf.scene import cluster
    jobs = (cluster.read_pairs(FLAGS.pairs) if FLAGS.pairs
            else [(FLAGS.pan, FLAGS.ms, FLAGS.out)])
    outputs.extend(p for _, _, out in jobs for p in options.outputs(out))
    summary = cluster.pansharpen_job(checkpoint, jobs, options, FLAGS.scheduler,
                                     FLAGS.workers, say=_say)
    cluster.print_job_summary(summary)


def main(argv):
    # The scene tool builds its own graph: TensorFlow's v2 behaviour needs no switching off.
    start, outputs = time.time(), []  # outputs: filled once the flags are read
    return cli.run_flags_only(argv, lambda: _pansharpen(outputs), graph_mode=False,
                              interrupted=lambda: interrupted_line(outputs, start), sigterm=True)


def run():
    """Console script ``sipsa-pansharpen``; the process ends as soon as the outputs are done
    (``cli.exiting_now``)."""
    cli.start(main, __name__, exit_now=True)


if __name__ == "__main__":
    run()
