"""Every setting of a training run (the command-line flags of ``sipsa_tf.train``).

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md ("Optimiser and schedule") describes the original's
semantics as this port implements them. Re-exported by :mod:`sipsa_tf.training.loop`.
"""
import dataclasses

from sipsa_tf.data import supervised
from sipsa_tf.core import precision as precisions
from sipsa_tf.constants import IMG_DIV
from sipsa_tf.errors import UserError

LOSS_TERMS = ("loss", "edge_big", "color_big", "edge_small", "color_small")
STRATEGIES = ("default", "mirrored", "multi_worker")  # --strategy (training/distribute.py)
OBJECTIVES = {"original": LOSS_TERMS, "wald": ("loss",)}  # objective -> its loss terms


def check_strategy(name, devices=None):
    """Raises UserError for an unknown ``--strategy`` or ``--devices`` without ``mirrored``."""
    if name not in STRATEGIES:
        raise UserError("--strategy must be one of %s, got %r" % (", ".join(STRATEGIES), name))
    if devices and name != "mirrored":
        raise UserError("--devices needs --strategy=mirrored")


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; field names are the command-line flag names.

    Defaults are the original's settings (Proposed_10_16_0.py), except paths.
    """
    data_dir: str = None
    log_dir: str = None
    checkpoint_dir: str = None      # default: log_dir
    test_folder: str = "Test"       # <data_dir>/<test_folder>/{RGB,PAN}; skipped if absent
    test_dir: str = None            # overrides test_folder; must exist
    pair_by_order: bool = False
    img_div: float = IMG_DIV
    batch_size: int = 4
    ms_patch: int = 128
    crops_per_image: int = 30
    readers: int = 6
    shuffle_buffer: int = 300
    augment: bool = True
    learning_rate: float = 1e-4
    weight_decay: float = 1e-7
    lr_boundary: int = -1           # -1: epochs * iters_per_epoch / 2 - 1, as the original
    lr_decay: float = 0.1
    epochs: int = 10
    iters_per_epoch: int = 10000
    max_steps: int = 0              # > 0: stop at this global step
    per_sample_loss: bool = False
    literal_loss: bool = False
    test_every: int = 1
    save_every: int = 0             # > 0: also save every this many steps
    keep_checkpoints: int = 5       # 0 keeps all
    summary_every: int = 50
    seed: int = 0
    init_checkpoint: str = None
    init_optimizer: bool = False
    threads: int = 0                # intra/inter-op threads; 0: TensorFlow's default
    progress: str = "auto"          # auto (bar on a terminal, 10% lines otherwise), on, off
    objective: str = "original"     # original (unsupervised) or wald (supervised, docs/training.md)
    split: str = None               # split file: train on its "train" regions of data_dir/*.mat
    synthetic_fraction: float = 0.0  # wald: share of crops from synthetic scenes with truth
    synthetic_scenes: int = 64      # wald: how many synthetic scenes (MS synthetic_size^2)
    synthetic_size: int = 64
    max_offset: float = 2.0         # wald: global MS displacement, MS pixels
    local_offset: float = 0.5       # wald: local MS displacement field amplitude, MS pixels
    aligned_fraction: float = 0.25  # wald: share of crops left aligned
    synthetic_aligned_fraction: float = None  # wald: share of synthetic scenes left aligned
                                              # (default: aligned_fraction)
    edge_weight: float = 0.0        # wald: weight of the edge-excess (anti-ghosting) term
    sam_weight: float = 0.0         # wald: weight of the spectral-angle term (radians)
    # The feature alignment module (docs/training.md, "The feature alignment module"); the
    # defaults are the original's: no alignment term, no temperature, nothing re-initialised
    # or frozen, and the forward graph is the original's whatever these are.
    align_weight: float = 0.0       # wald: weight of the FAM alignment term on known offsets
    align_loss: str = "epe"         # epe (of the soft displacement) or ce (over the 81 taps)
    align_local_weight: float = 0.0  # ce: extra weight on pixels moving apart from their crop
    align_target: str = "mean"      # ce: tap weights of the block-mean displacement or mixture
    fam_reinit: bool = False        # re-initialise the kernel branch after --init_checkpoint
    fam_temperature: float = 1.0    # FAM softmax temperature at step 0, annealed linearly ...
    fam_temperature_steps: int = 0  # ... to 1 at this global step (0: no temperature)
    freeze_steps: int = 0           # until this global step only the kernel branch learns
    freeze_kernel_branch: bool = False  # the kernel branch never learns (the rest does)
    align_statistics: bool = False  # de-normalise with the MS statistics moved by the FAM
                                    # (changes the forward graph, not its variables)
    fam_flat_mean: bool = False     # least-textured quarter: the image's mean FAM weights
                                    # (changes the forward graph, not its variables)
    strategy: str = "default"       # default (one device), mirrored, multi_worker (TF_CONFIG)
    devices: str = None             # mirrored: e.g. /gpu:0,/gpu:1 or /cpu:0,/cpu:1; '': all GPUs
    precision: str = precisions.FLOAT32  # dtype of the convolutions (sipsa_tf.core.precision)

    @property
    def total_steps(self):
        """The global step training stops at."""
        total = self.epochs * self.iters_per_epoch
        return min(total, self.max_steps) if self.max_steps > 0 else total

    @property
    def loss_names(self):
        """The loss terms this run logs, ``loss`` first."""
        if self.objective == "wald":
            from sipsa_tf.core import losses  # TensorFlow: not at import (command lines' flags)
            return losses.supervised_terms(self.edge_weight, self.align_weight,
                                           self.align_loss, self.sam_weight)
        return OBJECTIVES[self.objective]

    @property
    def input_names(self):
        """The tensors of a training batch, in the dataset's order."""
        if self.objective != "wald":
            return ("ms", "pan")
        return ("ms", "pan", "target") + (("flow",) if self.align_weight > 0 else ())

    @property
    def temperature(self):
        """True when the FAM's softmax takes an annealed temperature."""
        return self.fam_temperature_steps > 0 and self.fam_temperature != 1.0

    @property
    def forward_options(self):
        """The forward-graph options (``checkpoints.FORWARD_FLAGS``) for ``model.forward``."""
        from sipsa_tf import checkpoints
        return {name: getattr(self, name) for name in checkpoints.FORWARD_FLAGS}

    @property
    def boundary(self):
        """The global step after which lr and wd drop by lr_decay."""
        if self.lr_boundary >= 0:
            return self.lr_boundary
        return int(self.epochs * self.iters_per_epoch / 2 - 1)

    def validate(self):
        """Raises ValueError naming the first bad setting."""
        positive = ("batch_size", "ms_patch", "crops_per_image", "readers", "shuffle_buffer",
                    "epochs", "iters_per_epoch", "test_every", "img_div")
        for name in positive:
            if getattr(self, name) <= 0:
                raise UserError("--%s must be positive, got %s" % (name, getattr(self, name)))
        from sipsa_tf.core import losses, model  # TensorFlow: not at import (the flags)
        if self.ms_patch < model.MIN_MS_SIZE:
            raise UserError("--ms_patch must be at least %d, got %d"
                             % (model.MIN_MS_SIZE, self.ms_patch))
        if not self.data_dir:
            raise UserError("--data_dir is required")
        if not self.log_dir:
            raise UserError("--log_dir is required")
        if self.progress not in ("auto", "on", "off"):
            raise UserError("--progress must be auto, on or off, got %r" % self.progress)
        if self.objective not in OBJECTIVES:
            raise UserError("--objective must be one of %s, got %r"
                             % (", ".join(OBJECTIVES), self.objective))
        for name in ("synthetic_fraction", "aligned_fraction", "synthetic_aligned_fraction"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise UserError("--%s must be in [0, 1], got %s" % (name, value))
        for name in ("edge_weight", "sam_weight"):
            if getattr(self, name) < 0:
                raise UserError("--%s must be >= 0, got %s" % (name, getattr(self, name)))
        if self.align_weight < 0:
            raise UserError("--align_weight must be >= 0, got %s" % self.align_weight)
        if self.align_loss not in losses.ALIGN_LOSSES:
            raise UserError("--align_loss must be one of %s, got %r"
                            % (", ".join(losses.ALIGN_LOSSES), self.align_loss))
        if self.align_target not in losses.ALIGN_TARGETS:
            raise UserError("--align_target must be one of %s, got %r"
                            % (", ".join(losses.ALIGN_TARGETS), self.align_target))
        if self.align_local_weight < 0:
            raise UserError("--align_local_weight must be >= 0, got %s" % self.align_local_weight)
        ce_only = {"--align_target=%s" % self.align_target: self.align_target != "mean",
                   "--align_local_weight": self.align_local_weight > 0}
        for name, used in ce_only.items():
            if used and (self.align_loss != "ce" or self.align_weight <= 0):
                raise UserError("%s needs --align_loss=ce and --align_weight > 0" % name)
        if not 1.0 <= self.fam_temperature <= 100.0:
            raise UserError("--fam_temperature must be in [1, 100], got %s"
                            % self.fam_temperature)
        for name in ("fam_temperature_steps", "freeze_steps"):
            if getattr(self, name) < 0:
                raise UserError("--%s must be >= 0, got %s" % (name, getattr(self, name)))
        if self.fam_temperature != 1.0 and self.fam_temperature_steps == 0:
            raise UserError("--fam_temperature needs --fam_temperature_steps > 0")
        if self.fam_reinit and not self.init_checkpoint:
            raise UserError("--fam_reinit needs --init_checkpoint (a fresh run is already "
                            "initialised)")
        if self.freeze_kernel_branch and (self.freeze_steps or self.fam_reinit):
            raise UserError("--freeze_kernel_branch cannot go with --freeze_steps (which "
                            "trains the kernel branch alone) or --fam_reinit (which would "
                            "freeze a random branch)")
        if (self.freeze_steps or self.freeze_kernel_branch or self.fam_reinit
                or self.temperature) and self.strategy != "default":
            raise UserError("--freeze_steps, --freeze_kernel_branch, --fam_reinit and "
                            "--fam_temperature need --strategy=default")
        for name in ("synthetic_fraction", "edge_weight", "align_weight", "sam_weight"):
            if getattr(self, name) > 0 and self.objective != "wald":
                raise UserError("--%s needs --objective=wald" % name)
        check_strategy(self.strategy, self.devices)
        policy = precisions.Policy(self.precision, warn=False)  # checks the name
        if policy.loss_scaling and self.strategy != "default":
            raise UserError("--precision=float16 (loss scaling) needs --strategy=default")
        self.displacement().validate()  # the offsets (shared by the real and synthetic crops)

    def displacement(self, synthetic=False):
        """The misregistration augmentation of the Wald objective (of the real crops, or of
        the synthetic scenes with ``synthetic``)."""
        aligned = self.aligned_fraction
        if synthetic and self.synthetic_aligned_fraction is not None:
            aligned = self.synthetic_aligned_fraction
        return supervised.Displacement(self.max_offset, self.local_offset, aligned)

    def to_flags(self):
        """The settings as a flag file (``--flagfile`` reads it back)."""
        lines = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, bool):
                lines.append("--%s%s" % ("" if value else "no", field.name))
            else:
                lines.append("--%s=%s" % (field.name, value))
        return "\n".join(lines) + "\n"
