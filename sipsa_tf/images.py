"""Command line: the original's test step for a checkpoint (SIPSA-Net, Lee, Seo, Kim, CVPR 2021).

    python -m sipsa_tf.images --checkpoint=checkpoints/wald_stage1j \\
        [--test_dir=<dir with RGB/ and PAN/, or <name>_ms.tif/<name>_pan.tif>] --out_dir=out

Writes the stretched PNGs and ``metrics.csv`` / ``metrics.md`` to --out_dir and prints the
original's [Align X] / [4ch SCC] lines. Without --test_dir, the synthetic test scenes (fixed seed)
are generated under --out_dir and used. Flags only; the work is done by
:func:`sipsa_tf.training.image_eval.evaluate_checkpoint`.
"""
import os

from absl import flags

from sipsa_tf import checkpoint_paths
from sipsa_tf.cli import common as cli
from sipsa_tf.constants import IMG_DIV

flags.DEFINE_string("checkpoint", checkpoint_paths.default_checkpoint(), "Checkpoint prefix "
                    "or directory (only op_net/G/* is read; the original's model-100000 works "
                    "too). Default: the bundled one.")
flags.DEFINE_string("test_dir", None, "Test images: <test_dir>/{RGB,PAN} or <name>_ms.tif / "
                    "<name>_pan.tif pairs. Default: synthetic test scenes.")
flags.DEFINE_string("out_dir", None, "Where the PNGs and metric tables go.")
flags.DEFINE_float("img_div", IMG_DIV, "Pixel values are DN / img_div (2047: 11-bit).")
flags.DEFINE_string("stamp", "", "Text added to the PNG names, e.g. a date (default: none, so "
                    "that a rerun overwrites the same files).")
flags.DEFINE_boolean("pair_by_order", False, "Pair RGB/PAN files by sorted order.")
flags.DEFINE_integer("synthetic_seed", 0, "Seed of the synthetic test scenes.")

FLAGS = flags.FLAGS


def main(argv):
    return cli.run_flags_only(argv, _evaluate)


def _evaluate():
    from sipsa_tf.data import synthetic
    from sipsa_tf.training import image_eval
    cli.require(FLAGS, "out_dir")
    checkpoint = checkpoint_paths.check(FLAGS.checkpoint)  # before TensorFlow is imported
    test_dir = FLAGS.test_dir
    if not test_dir:
        scenes_dir = os.path.join(FLAGS.out_dir, "synthetic_scenes")
        synthetic.generate(scenes_dir, seed=FLAGS.synthetic_seed, n_train=0, n_road=0)
        test_dir = os.path.join(scenes_dir, synthetic.TEST_FOLDER)
        print("no --test_dir: synthetic test scenes (seed %d) in %s"
              % (FLAGS.synthetic_seed, test_dir))
    image_eval.evaluate_checkpoint(checkpoint, test_dir, FLAGS.out_dir,
                                    img_div=FLAGS.img_div, stamp=FLAGS.stamp,
                                    pair_by_order=FLAGS.pair_by_order)


def run():
    """Console entry point."""
    cli.start(main, __name__)


if __name__ == "__main__":
    run()
