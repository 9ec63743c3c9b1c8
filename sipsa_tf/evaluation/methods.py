"""The method registry of the evaluation: classical baselines, GDAL and SIPSA-Net.

Part of the evaluation suite (:mod:`sipsa_tf.evaluation`; docs/design.md, "Metrics and test
images").
"""
from sipsa_tf.constants import SCALE
from sipsa_tf.evaluation import baselines, external
from sipsa_tf.evaluation.scenes import EvaluationError


SIPSA_METHODS = ("sipsa", "sipsa_adapted")
ALL_METHODS = tuple(baselines.METHODS) + tuple(external.METHODS) + SIPSA_METHODS
DEFAULT_METHODS = ALL_METHODS


class Methods:
    """The methods to run, behind one interface: ``methods.fuse(name, ms, pan, scene)``.

    Args:
        names: method names (see ``ALL_METHODS``).
        checkpoint: SIPSA-Net checkpoint for 'sipsa' and the start of 'sipsa_adapted'; None for
            a random initialisation (only meaningful with adaptation).
        adapt_steps: steps of scene adaptation for 'sipsa_adapted' (must be > 0 to run it).
        adapt_options: keyword arguments of :meth:`sipsa_tf.training.adapt.Adapter.adapt`
            (crop, batch,
            seed) and of :class:`~sipsa_tf.training.adapt.Adapter` (lr, wd).
        precision: the precision of 'sipsa' (:mod:`sipsa_tf.core.precision`); scene adaptation
            ('sipsa_adapted') runs in float32.

    Attributes:
        names: the methods that will run; skipped: {name: reason} for those that cannot
        (GDAL absent); adaptation: list of dicts (scene, protocol, loss before/after, seconds).
    """

    def __init__(self, names, checkpoint=None, adapt_steps=0, adapt_options=None, seed=0,
                 precision="float32"):
        unknown = [n for n in names if n not in ALL_METHODS]
        if unknown or not names:
            raise EvaluationError("unknown method(s) %s; choose from %s" % (
                ", ".join(unknown) or "(none given)", ", ".join(ALL_METHODS)))
        if adapt_steps < 0:
            raise EvaluationError("adapt_steps must be >= 0, got %d" % adapt_steps)
        if "sipsa_adapted" in names and adapt_steps == 0:
            raise EvaluationError("method sipsa_adapted needs --adapt_steps > 0")
        self.skipped, self.gdal_version = {}, None
        if "gdal" in names:
            ok, reason = external.gdal_status()
            if ok:
                self.gdal_version = reason
            else:
                self.skipped["gdal"] = reason
        self.names = [n for n in names if n not in self.skipped]
        self.checkpoint, self.adapt_steps = checkpoint, int(adapt_steps)
        options = dict(adapt_options or {})
        self._adapter_options = {k: options.pop(k) for k in ("lr", "wd") if k in options}
        self._adapt_options = options
        self.seed = seed
        self.adaptation = []
        self._sipsa = self._adapter = None
        if "sipsa" in self.names:
            from sipsa_tf import inference
            self._sipsa = inference.Pansharpener(checkpoint, seed=seed, precision=precision)
        if "sipsa_adapted" in self.names:
            from sipsa_tf.training import adapt
            source = self._sipsa if self._sipsa is not None else checkpoint
            self._adapter = adapt.Adapter(source, seed=seed, **self._adapter_options)

    @property
    def pansharpener(self):
        """The :class:`sipsa_tf.inference.Pansharpener` of 'sipsa' (None if it does not run)."""
        return self._sipsa

    def source(self):
        """What SIPSA-Net starts from, as text."""
        return self.checkpoint or "random initialisation (seed %d)" % self.seed

    def fuse(self, name, ms, pan, scene, protocol=""):
        """Fuses (h, w, 3) ``ms`` with (4h, 4w) ``pan`` by method ``name``.

        Returns:
            (4h, 4w, 3) float64 fused image in the scale of the inputs ([0, 1]).
        """
        if name in baselines.METHODS:
            extra = {"sensor": scene.gains} if name == "gsa" else {}
            return baselines.fuse(name, ms, pan, SCALE, **extra)
        if name in external.METHODS:
            return external.fuse(name, ms, pan, SCALE)
        if name == "sipsa":
            return self._sipsa(ms, pan)["output"]
        adapted = self._adapter.adapt(ms, pan, self.adapt_steps, **self._adapt_options)
        try:
            self.adaptation.append({"image": scene.name, "protocol": protocol,
                                    "loss_before": adapted.loss_before,
                                    "loss_after": adapted.loss_after,
                                    "seconds": adapted.seconds})
            return adapted(ms, pan)["output"]
        finally:
            adapted.close()

    def close(self):
        for obj in (self._sipsa, self._adapter):
            if obj is not None:
                obj.close()
