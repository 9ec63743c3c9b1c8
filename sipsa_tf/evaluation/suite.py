"""The evaluation suite's entry point: :class:`EvalConfig` and :func:`run`.

Part of the evaluation suite (:mod:`sipsa_tf.evaluation`; docs/design.md, "Metrics and test
images").
"""
import dataclasses
import os
import sys

from sipsa_tf.core import precision as precisions
from sipsa_tf.data import supervised
from sipsa_tf.evaluation.methods import DEFAULT_METHODS, Methods
from sipsa_tf.evaluation.panels import PANEL_COLOURS, panel, panel_name, save_png
from sipsa_tf.evaluation.protocols import PROTOCOLS, evaluate
from sipsa_tf.evaluation.reports import atomic_write, markdown_report, write_csv
from sipsa_tf.evaluation.scenes import (DEFAULT_MAX_PAN, EvaluationError, Scene, load_scenes,
                                        synthetic_scenes)
from sipsa_tf.utils import files


@dataclasses.dataclass
class EvalConfig:
    """Settings of :func:`run` (the flags of ``python -m sipsa_tf.evaluate``)."""
    out_dir: str = "evaluation"
    data_dir: str = None           # None or missing with auto_data: synthetic scenes
    auto_data: bool = False        # data_dir missing -> synthetic scenes instead of an error
    methods: tuple = DEFAULT_METHODS
    protocols: tuple = PROTOCOLS
    checkpoint: str = None         # None: random initialisation
    adapt_steps: int = 0
    adapt_lr: float = 1e-4
    adapt_crop: int = 32
    adapt_batch: int = 4
    max_pan: int = DEFAULT_MAX_PAN
    panel_crop: int = 128
    panels: bool = True
    panel_images: tuple = ()       # image names to draw panels for; empty: all
    command: str = None            # the command line, quoted in the report
    split: str = None              # split file: evaluate one part of it (split_part) only
    split_part: str = "held_out"   # held_out, or validation (for choosing stages, issue 21)
    n_synthetic: int = 4
    synthetic_size: int = 64
    seed: int = 0
    progress: str = "auto"
    precision: str = precisions.FLOAT32  # SIPSA-Net's convolutions (sipsa_tf.core.precision)
    alignment: bool = False        # also measure the FAM (sipsa_tf.evaluation.alignment)


def _alignment_section(pansharpener, scenes, out_dir, paths):
    """Measures the FAM on ``scenes`` (:mod:`sipsa_tf.evaluation.alignment`), writes
    ``alignment.csv`` and returns the report's section."""
    from sipsa_tf.evaluation import alignment
    rows = alignment.measure_real(pansharpener, scenes)
    robust = alignment.robustness(pansharpener, scenes)
    columns = ("image", "dy", "dx", "epe", "epe_zero", "max_tap", "spread", "d_mean_y",
               "d_mean_x", "q2n_sipsa", "q2n_gsa", "border")
    paths["alignment.csv"] = write_csv(rows, os.path.join(out_dir, "alignment.csv"), columns)
    return ("\n## SIPSA-Net's feature alignment module\n\nReduced resolution, the MS displaced "
            "by known global shifts (MS pixels; docs/alignment.md). EPE: end-point error of "
            "the FAM's soft displacement, the zero predictor's in brackets.\n\n%s\n"
            "Q2n drop from the aligned case, SIPSA-Net / GSA ((x): more than GSA's + 0.01):"
            "\n\n%s" % (alignment.summary_table(rows), alignment.robustness_table(robust)))


def run(config, stdout=None):
    """Runs the evaluation and writes ``results.csv``, ``results.md`` and the panels.

    Returns:
        (rows, paths): the result rows and the dict of written files.

    Raises:
        EvaluationError, data.DataError, checkpoints.CheckpointError: bad input (before anything
            is written).
    """
    stdout = stdout or sys.stdout
    bad = [p for p in config.protocols if p not in PROTOCOLS]
    if bad or not config.protocols:
        raise EvaluationError("unknown protocol(s) %s; choose from %s"
                              % (", ".join(bad) or "(none)", ", ".join(PROTOCOLS)))
    precisions.check_name(config.precision)
    notes = ["command: `%s`" % config.command] if config.command else []
    if config.precision != precisions.FLOAT32:
        notes.append("SIPSA-Net precision: %s (docs/design.md, \"Precision\")" % config.precision)
    if config.split:
        split = supervised.load_split(config.split)
        if config.split_part not in split:
            raise EvaluationError("%s: the split file has no '%s' part"
                                  % (config.split, config.split_part))
        regions = supervised.load_regions(split, config.split_part, config.data_dir)
        scenes = [Scene(r.name, r.ms, r.pan, r.sensor, r.gains) for r in regions]  # whole
        notes.append("data: the %s regions of %s in %s, whole" % (
            config.split_part.replace("_", "-"), config.split, config.data_dir))
    elif config.data_dir and (os.path.isdir(config.data_dir) or not config.auto_data):
        scenes = load_scenes(config.data_dir, config.max_pan)
        if not scenes:
            raise EvaluationError("%s: no images" % config.data_dir)
        notes.append("data: %s" % config.data_dir)
    else:
        scenes = synthetic_scenes(config.n_synthetic, config.synthetic_size, config.seed)
        notes.append("data: %d synthetic test scenes (sipsa_tf.data.synthetic, seed %d)%s"
                     % (len(scenes), config.seed, " (%s not found)" % config.data_dir
                        if config.data_dir else ""))
    methods = Methods(list(config.methods), config.checkpoint, config.adapt_steps,
                      {"lr": config.adapt_lr, "crop": config.adapt_crop,
                       "batch": config.adapt_batch, "seed": config.seed}, seed=config.seed,
                      precision=config.precision)
    os.makedirs(config.out_dir, exist_ok=True)
    paths = {}

    def keep(scene, protocol, inputs, fused_by):
        if config.panels and (not config.panel_images or scene.name in config.panel_images):
            path = os.path.join(config.out_dir, panel_name(scene.name, protocol))
            paths[os.path.basename(path)] = save_png(
                panel(inputs, fused_by, config.panel_crop), path, PANEL_COLOURS)

    try:
        rows = evaluate(scenes, methods, config.protocols, config.progress, keep)
        paths["results.csv"] = write_csv(rows, os.path.join(config.out_dir, "results.csv"))
        report = markdown_report(rows, scenes, methods, config.protocols, notes)
        if config.alignment and methods.pansharpener is not None:
            report += _alignment_section(methods.pansharpener, scenes, config.out_dir, paths)
        paths["results.md"] = atomic_write(os.path.join(config.out_dir, "results.md"),
                                            report.encode("utf-8"))
    except files.WriteError as err:
        last = list(paths.values())[-1] if paths else None
        raise files.WriteError(err.path, "%s; the last complete output is %s"
                               % (err.reason, last or "none")) from None
    finally:
        methods.close()
    print(report, file=stdout)
    return rows, paths
