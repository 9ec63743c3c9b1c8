"""Command line: evaluate SIPSA-Net (Lee, Seo, Kim, CVPR 2021) against baselines.

    python -m sipsa_tf.evaluate --data_dir=../shared/data/grip --auto_data \\
        --split=experiments/grip_split.json --checkpoint=checkpoints/wald_stage1j \\
        --out_dir=evaluation

Methods x images x protocols (reduced-resolution Wald protocol and full resolution), written as
``results.csv``, ``results.md`` and PNG panels into ``--out_dir``. Flags only; the work is done by
:func:`sipsa_tf.evaluation.suite.run`. Bad input prints one line and exits with status 1.
"""
import os
import sys

from absl import flags

from sipsa_tf import checkpoint_paths
from sipsa_tf.cli import common as cli

FLAGS = flags.FLAGS


# duplicates pairs these flag definitions with other command lines' (same shape: name, the
# library's default, help text); they are declarations, one per flag, not repeated logic.
def _define_flags():
    from sipsa_tf.evaluation.methods import ALL_METHODS
    from sipsa_tf.evaluation.protocols import PROTOCOLS
    from sipsa_tf.evaluation.suite import EvalConfig
    d = EvalConfig()
    flags.DEFINE_string("out_dir", d.out_dir, "Where results.csv, results.md and the panels go.")
    flags.DEFINE_string("data_dir", d.data_dir, "Images: a folder of GRIP-style .mat files "
                        "(I_PAN, I_MS/I_MS_LR, RGB_indexes, L) or a test folder (RGB/, PAN/). "
                        "Unset: the synthetic test scenes.")
    flags.DEFINE_boolean("auto_data", d.auto_data, "If --data_dir does not exist, use the "
                         "synthetic scenes instead of failing.")
    flags.DEFINE_list("methods", list(d.methods), "Methods, from: %s." % ", ".join(ALL_METHODS))
    flags.DEFINE_list("protocols", list(d.protocols), "Protocols, from: %s."
                      % ", ".join(PROTOCOLS))
    bundled = checkpoint_paths.default_checkpoint()
    flags.DEFINE_string("checkpoint", bundled if os.path.isdir(bundled) else "", "SIPSA-Net "
                        "checkpoint (prefix or folder) for sipsa and the start of sipsa_adapted; "
                        "default: the bundled one; empty (--checkpoint=): random "
                        "initialisation.")
    flags.DEFINE_integer("adapt_steps", d.adapt_steps, "Scene adaptation steps for the method "
                         "sipsa_adapted (added to --methods when > 0; 0: not run).")
    flags.DEFINE_float("adapt_lr", d.adapt_lr, "Adam learning rate of the adaptation.")
    flags.DEFINE_integer("adapt_crop", d.adapt_crop, "MS crop side of the adaptation batches.")
    flags.DEFINE_integer("adapt_batch", d.adapt_batch, "Crops per adaptation step.")
    flags.DEFINE_string("split", None, "Split file (experiments/grip_split.json): evaluate only "
                        "its held-out regions of the .mat files in --data_dir, uncropped.")
    flags.DEFINE_enum("split_part", d.split_part, ["held_out", "validation"], "The part of "
                      "--split evaluated: held_out (quality figures), or validation (the strip "
                      "kept for choosing stages and weights, docs/training.md).")
    flags.DEFINE_boolean("alignment", d.alignment, "Also measure SIPSA-Net's feature alignment "
                         "module: its end-point error against known global MS shifts (up to 3 "
                         "MS pixels) and the Q2n drop against GSA's, at reduced resolution "
                         "(alignment.csv and a section of results.md; docs/alignment.md).")
    flags.DEFINE_integer("max_pan", d.max_pan, "Centre-crop larger images to this PAN side.")
    flags.DEFINE_integer("panel_crop", d.panel_crop, "Side (PAN pixels) of the panel crops.")
    flags.DEFINE_boolean("panels", d.panels, "Write the PNG panels.")
    flags.DEFINE_list("panel_images", list(d.panel_images), "Draw panels only for these images "
                      "(file stems); empty: all.")
    flags.DEFINE_integer("n_synthetic", d.n_synthetic, "Synthetic scenes (without data).")
    flags.DEFINE_integer("synthetic_size", d.synthetic_size, "MS side of the synthetic scenes.")
    flags.DEFINE_integer("seed", d.seed, "Seed (synthetic scenes, random init, adaptation).")
    flags.DEFINE_enum("progress", d.progress, ["auto", "on", "off"], "Progress bar on stderr.")
    flags.DEFINE_string("precision", d.precision, "SIPSA-Net's convolutions in float32 (the "
                        "faithful port), bfloat16 or float16 (docs/performance.md, \"Precision\").")


_define_flags()


def config_from_flags():
    """The EvalConfig described by the parsed flags."""
    from sipsa_tf.evaluation.suite import EvalConfig
    methods = [m for m in FLAGS.methods if m != "sipsa_adapted" or FLAGS.adapt_steps > 0]
    if FLAGS.adapt_steps > 0 and "sipsa_adapted" not in methods:
        methods.append("sipsa_adapted")
    return EvalConfig(
        out_dir=FLAGS.out_dir, data_dir=FLAGS.data_dir or None, auto_data=FLAGS.auto_data,
        methods=tuple(methods), protocols=tuple(FLAGS.protocols),
        checkpoint=FLAGS.checkpoint or None, adapt_steps=FLAGS.adapt_steps,
        adapt_lr=FLAGS.adapt_lr, adapt_crop=FLAGS.adapt_crop, adapt_batch=FLAGS.adapt_batch,
        max_pan=FLAGS.max_pan, panel_crop=FLAGS.panel_crop, panels=FLAGS.panels,
        panel_images=tuple(FLAGS.panel_images),
        command="python -m sipsa_tf.evaluate " + " ".join(sys.argv[1:]),
        n_synthetic=FLAGS.n_synthetic, synthetic_size=FLAGS.synthetic_size, seed=FLAGS.seed,
        progress=FLAGS.progress, split=FLAGS.split or None, split_part=FLAGS.split_part,
        precision=FLAGS.precision,
        alignment=FLAGS.alignment)


def main(argv):
    def body():
        if FLAGS.checkpoint and any(m.startswith("sipsa") for m in FLAGS.methods):
            checkpoint_paths.check(FLAGS.checkpoint)  # before TensorFlow is imported
        from sipsa_tf.evaluation import suite
        suite.run(config_from_flags())
    return cli.run_flags_only(argv, body)


def run():
    """Console script ``sipsa-evaluate``."""
    cli.start(main, __name__)


if __name__ == "__main__":
    run()
