"""Command line: train SIPSA-Net (Lee, Seo, Kim, CVPR 2021) as the original script does.

    python -m sipsa_tf.train --flagfile=experiments/cpu_small.flags \\
        --data_dir=data/synthetic --log_dir=logs/train [--generate_synthetic]

Flags only; the work is done by :func:`sipsa_tf.training.loop.train`. Data or checkpoint problems
print one line and exit with status 1.
"""
from absl import flags

from sipsa_tf.cli import common as cli

FLAGS = flags.FLAGS


# duplicates pairs these flag definitions with other command lines' (same shape: name, the
# library's default, help text); they are declarations, one per flag, not repeated logic.
def _define_flags():
    from sipsa_tf.training.config import TrainConfig
    d = TrainConfig()
    flags.DEFINE_string("data_dir", None, "Training data: <data_dir>/Trgbn_TRAIN/{RGB,PAN}[,"
                        "{RGB2,PAN2}] (original layout) or <name>_ms.tif/<name>_pan.tif pairs.")
    flags.DEFINE_string("log_dir", None, "Logs, TensorBoard events, test images (Imgs/) and, "
                        "unless --checkpoint_dir is given, the checkpoints. A restart with the "
                        "same directory resumes.",
                        allow_override=True)  # replaces absl.logging's unused --log_dir
    flags.DEFINE_string("checkpoint_dir", None, "Where model.ckpt-<step> goes (default: log_dir).")
    flags.DEFINE_string("test_folder", d.test_folder, "Test set <data_dir>/<test_folder>/{RGB,PAN}"
                        "; the test step is skipped if it does not exist.")
    flags.DEFINE_string("test_dir", None, "Test set folder (overrides --test_folder; must exist).")
    flags.DEFINE_boolean("pair_by_order", d.pair_by_order, "Pair RGB/PAN files by sorted order "
                         "as the original (default: by file name).")
    flags.DEFINE_boolean("generate_synthetic", False, "Generate the synthetic scene set into "
                         "--data_dir first if it is not there (sipsa_tf.data.synthetic).")
    flags.DEFINE_integer("synthetic_seed", 0, "Seed of the synthetic scene set.")
    flags.DEFINE_float("img_div", d.img_div, "Pixel values are DN / img_div (2047: 11-bit).")
    flags.DEFINE_integer("batch_size", d.batch_size, "Crops per batch.")
    flags.DEFINE_integer("ms_patch", d.ms_patch, "MS crop size p (PAN crops are 4p).")
    flags.DEFINE_integer("crops_per_image", d.crops_per_image, "Random crops per image read.")
    flags.DEFINE_integer("readers", d.readers, "Images read in parallel.")
    flags.DEFINE_integer("shuffle_buffer", d.shuffle_buffer, "Crop shuffle buffer.")
    flags.DEFINE_boolean("augment", d.augment, "Random flip + rot90 per batch.")
    flags.DEFINE_float("learning_rate", d.learning_rate, "Adam learning rate (before the step).")
    flags.DEFINE_float("weight_decay", d.weight_decay, "Decoupled weight decay (before the step).")
    flags.DEFINE_integer("lr_boundary", d.lr_boundary, "lr and wd drop by --lr_decay after this "
                         "global step; -1: epochs * iters_per_epoch / 2 - 1 (the original).")
    flags.DEFINE_float("lr_decay", d.lr_decay, "Factor applied after --lr_boundary.")
    flags.DEFINE_integer("epochs", d.epochs, "Epochs.")
    flags.DEFINE_integer("iters_per_epoch", d.iters_per_epoch, "Iterations per epoch.")
    flags.DEFINE_integer("max_steps", d.max_steps, "If > 0, stop at this global step.")
    flags.DEFINE_boolean("per_sample_loss", d.per_sample_loss, "Shift minimum per batch item "
                         "(the original: over shifts and batch items together).")
    flags.DEFINE_boolean("literal_loss", d.literal_loss, "The original's stacked 98 x B loss "
                         "(same value, much more memory).")
    flags.DEFINE_integer("test_every", d.test_every, "Run the test step every N epochs (and "
                         "after the first and the last).")
    flags.DEFINE_integer("save_every", d.save_every, "Also save a checkpoint every N steps (0: "
                         "after each epoch only).")
    flags.DEFINE_integer("keep_checkpoints", d.keep_checkpoints, "Checkpoints kept (0: all).")
    flags.DEFINE_integer("summary_every", d.summary_every, "TensorBoard scalars every N steps.")
    flags.DEFINE_integer("seed", d.seed, "Random seed (weights, data stream, augmentation).")
    flags.DEFINE_string("init_checkpoint", None, "Warm start: restore the network from this "
                        "checkpoint (prefix or directory, e.g. the original's model-100000) "
                        "when log_dir has no checkpoint yet.")
    flags.DEFINE_boolean("init_optimizer", d.init_optimizer, "With --init_checkpoint, also "
                         "restore Adam slots, beta powers and global_step.")
    flags.DEFINE_integer("threads", d.threads, "TensorFlow intra/inter-op threads (0: default).")
    flags.DEFINE_enum("progress", d.progress, ["auto", "on", "off"], "Progress bar on stderr.")
    flags.DEFINE_enum("objective", d.objective, ["original", "wald"], "original: the paper's "
                      "unsupervised shift-invariant loss; wald: L1 against the original MS at "
                      "reduced resolution (docs/training.md).")
    flags.DEFINE_string("split", d.split, "Split file (e.g. experiments/grip_split.json): train "
                        "on its 'train' regions of the .mat files in --data_dir.")
    flags.DEFINE_float("synthetic_fraction", d.synthetic_fraction, "Wald: share of crops from "
                       "synthetic road scenes with known truth, misregistration and moving cars.")
    flags.DEFINE_integer("synthetic_scenes", d.synthetic_scenes, "Wald: synthetic scenes made.")
    flags.DEFINE_integer("synthetic_size", d.synthetic_size, "Wald: MS side of each.")
    flags.DEFINE_float("max_offset", d.max_offset, "Wald: the MS input is displaced by up to this "
                       "many MS pixels per axis (global, sub-pixel).")
    flags.DEFINE_float("local_offset", d.local_offset, "Wald: amplitude (MS pixels) of a smooth "
                       "local displacement added to half of the displaced crops.")
    flags.DEFINE_float("aligned_fraction", d.aligned_fraction, "Wald: share of crops (and, "
                       "unless --synthetic_aligned_fraction is given, of synthetic scenes) left "
                       "aligned.")
    flags.DEFINE_float("synthetic_aligned_fraction", d.synthetic_aligned_fraction, "Wald: share "
                       "of synthetic scenes acquired without a PAN/MS offset (default: "
                       "--aligned_fraction).")
    flags.DEFINE_float("edge_weight", d.edge_weight, "Wald: weight of the edge-excess term "
                       "(Sobel edges of the output that the target lacks within 1 pixel; "
                       "penalises ghosts and ringing, docs/training.md). 0: L1 only.")
    flags.DEFINE_float("sam_weight", d.sam_weight, "Wald: weight of the mean spectral angle "
                       "(radians) between the output and the reference, added to the L1 "
                       "(docs/training.md, stage K). 0: no such term.")
    flags.DEFINE_float("align_weight", d.align_weight, "Wald: weight of the feature alignment "
                       "module's end-point error against the crops' known MS displacement "
                       "(docs/training.md, 'The feature alignment module'). 0: no such term.")
    flags.DEFINE_enum("align_loss", d.align_loss, ["epe", "ce"], "The alignment term: epe, the "
                      "end-point error of the FAM's soft displacement; ce, the cross-entropy of "
                      "its 81 softmax weights against the known displacement's bilinear tap "
                      "weights (keeps a gradient where the softmax has saturated).")
    flags.DEFINE_float("align_local_weight", d.align_local_weight, "With --align_loss=ce: "
                       "weight the cross-entropy by 1 + w x (distance of a pixel's known "
                       "displacement from its crop's mean, MS pixels), so that moving cars and "
                       "local distortions count. 0: a plain mean (docs/training.md).")
    flags.DEFINE_enum("align_target", d.align_target, ["mean", "mixture"], "With "
                      "--align_loss=ce, the tap weights scored: mean, those of each MS pixel's "
                      "mean displacement; mixture, the mean of its 4 x 4 PAN pixels' tap weights "
                      "(a part-car, part-road MS pixel gets both motions; docs/training.md).")
    flags.DEFINE_boolean("fam_reinit", d.fam_reinit, "After --init_checkpoint, re-initialise the "
                         "kernel branch (conv01-conv11: He-normal, residual convolutions x0.1, "
                         "zero biases). Names and shapes unchanged.")
    flags.DEFINE_float("fam_temperature", d.fam_temperature, "FAM softmax temperature at step 0 "
                       "(1-100), annealed linearly to 1 at --fam_temperature_steps.")
    flags.DEFINE_integer("fam_temperature_steps", d.fam_temperature_steps, "Global step at which "
                         "the FAM temperature reaches 1 (0: no temperature, the original).")
    flags.DEFINE_boolean("align_statistics", d.align_statistics, "De-normalise the outputs with "
                         "the MS's local mean and sd moved by the FAM's own weights instead of "
                         "those of the MS as it came (docs/training.md, stage L). Same variables; "
                         "the forward graph differs from the original's, and the checkpoint's "
                         "flags.txt tells inference to use it.")
    flags.DEFINE_boolean("fam_flat_mean", d.fam_flat_mean, "Give the FAM's weights on the "
                         "least-textured quarter of MS pixels, where no displacement can be read, "
                         "the image's mean weights over the rest (docs/training.md). Same "
                         "variables; the forward graph differs from the original's, and the "
                         "checkpoint's flags.txt tells inference to use it.")
    flags.DEFINE_integer("freeze_steps", d.freeze_steps, "Until this global step only the kernel "
                         "branch (conv01-conv11) learns; the rest is frozen (0: all learn).")
    flags.DEFINE_boolean("freeze_kernel_branch", d.freeze_kernel_branch, "The kernel branch "
                         "(conv01-conv11) never learns; the rest does (a fusion fitted to a "
                         "kernel branch trained elsewhere, docs/training.md, stage O).")
    flags.DEFINE_enum("strategy", d.strategy, ["default", "mirrored", "multi_worker"],
                      "default: one device, the graph as always. mirrored: data-parallel over "
                      "--devices (default: every GPU). multi_worker: over the workers that "
                      "TF_CONFIG lists (worker 0 writes). --batch_size is the global batch, "
                      "split over the replicas; the original loss's minimum over shifts and "
                      "batch items is then taken within each replica's share (with "
                      "--per_sample_loss N replicas equal one device).")
    flags.DEFINE_string("devices", d.devices, "mirrored: devices, e.g. /gpu:0,/gpu:1 or "
                        "/cpu:0,/cpu:1 (CPU devices are made by the session).")
    flags.DEFINE_string("precision", d.precision, "float32 (the original's arithmetic), bfloat16 "
                        "or float16 (GPU; dynamic loss scaling): the dtype of the network's "
                        "convolutions; loss, optimiser and variables stay float32.")


_define_flags()


def config_from_flags():
    """The TrainConfig described by the parsed flags."""
    import dataclasses
    from sipsa_tf.training.config import TrainConfig
    return TrainConfig(**{f.name: getattr(FLAGS, f.name)
                          for f in dataclasses.fields(TrainConfig)})


def main(argv):
    return cli.run_flags_only(argv, _train)


def _train():
    from sipsa_tf.data import synthetic
    from sipsa_tf.training import loop
    from sipsa_tf.errors import UserError
    if FLAGS.generate_synthetic:
        if not FLAGS.data_dir:
            raise UserError("--generate_synthetic needs --data_dir")
        synthetic.generate(FLAGS.data_dir, seed=FLAGS.synthetic_seed)
    loop.train(config_from_flags())


def run():
    """Console script ``sipsa-train``."""
    cli.start(main, __name__)


if __name__ == "__main__":
    run()
