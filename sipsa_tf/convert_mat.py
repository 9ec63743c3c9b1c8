"""Command line: convert pan-sharpening .mat files to the TIFF layout the trainer and tests read.

SIPSA-Net (Lee, Seo, Kim, CVPR 2021) takes 3-band (R, G, B) MS and 1-band PAN at 4x. Each .mat
file (keys ``I_PAN``, ``I_MS_LR`` or ``I_MS``, optional ``RGB_indexes`` and ``L``, as in the
GRIP-UNINA examples) becomes ``<out_dir>/RGB/<name>.tif`` and ``<out_dir>/PAN/<name>.tif``
(uint16), or ``<name>_ms.tif`` / ``<name>_pan.tif`` with ``--layout=flat``:

    python -m sipsa_tf.convert_mat --out_dir=data/grip_test data/grip/*.mat [--rgb_bands=5,3,2]

The work is done by :func:`sipsa_tf.data.convert_mat`; problems print one line and exit 1
(:func:`sipsa_tf.cli.common.guarded`).
"""
from absl import flags

from sipsa_tf.cli import common as cli

flags.DEFINE_string("out_dir", None, "Destination folder.")
flags.DEFINE_string("rgb_bands", None, "1-based R,G,B band numbers, e.g. 5,3,2 (default: the "
                    "file's RGB_indexes, else 5,3,2 for 8 bands, 3,2,1 for 4 bands).")
flags.DEFINE_enum("layout", "folders", ["folders", "flat"], "folders: RGB/ and PAN/; flat: "
                  "<name>_ms.tif and <name>_pan.tif.")
flags.DEFINE_integer("to_bits", None, "Rescale DN from the file's L bits to this many (e.g. 11).")

FLAGS = flags.FLAGS


def convert(paths):
    """Converts every file of ``paths`` (see the module docstring), printing one line each."""
    from sipsa_tf import data
    from sipsa_tf.errors import UserError
    if not paths:
        raise UserError("give one or more .mat files")
    cli.require(FLAGS, "out_dir")
    bands = data.parse_bands(FLAGS.rgb_bands) if FLAGS.rgb_bands else None
    for path in paths:
        info = data.convert_mat(path, FLAGS.out_dir, rgb_bands=bands, layout=FLAGS.layout,
                                to_bits=FLAGS.to_bits)
        print("%s -> %s, %s (bands %s, MS %dx%d, PAN %dx%d)%s" % (
            path, info["ms_path"], info["pan_path"], ",".join(map(str, info["rgb_bands"])),
            info["ms_shape"][0], info["ms_shape"][1], info["pan_shape"][0],
            info["pan_shape"][1], "; " + info["note"] if info["note"] else ""))


def main(argv):
    return cli.guarded(lambda: convert(argv[1:]))


def run():
    """Console entry point."""
    cli.start(main, __name__)


if __name__ == "__main__":
    run()
