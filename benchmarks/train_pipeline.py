"""Where a training step's time goes: the NumPy crop generator against the network step.

The session trainer (:mod:`sipsa_tf.training.loop`) feeds the in-memory objectives (``--objective
wald`` and ``original`` with ``--split``) from :func:`sipsa_tf.data.supervised.batches` through a
prefetching ``tf.data`` generator, so the generator (crop, displacement by ``map_coordinates``,
flip/rot90) runs beside the AdamW step on another thread. This script measures both, in the same
process and on the same machine, for each objective of ``--objectives``::

    .venv/bin/python benchmarks/train_pipeline.py --data_dir ../shared/data/grip \
        [--split experiments/grip_split.json --objectives wald,original --steps 30]

and prints batches/s of the generator alone, training steps/s on a fixed batch (the network
alone), and their ratio. A ratio well above 1 means the generator keeps up and the step rate is
the network's; below 1, the generator is the bottleneck. The batch size and crop size of each
objective are those of its flag file (docs/training.md): Wald batch 4, MS crops 16 (stage 1) or
32 (stage 1c); original loss batch 2, MS 32. See docs/training.md for the measured figures.
"""
import time

from absl import app, flags

flags.DEFINE_string("data_dir", "../shared/data/grip", "Folder with the GRIP-UNINA .mat files.")
flags.DEFINE_string("split", "experiments/grip_split.json", "Split file (training regions).")
flags.DEFINE_list("objectives", ["wald", "original"], "Objectives to measure.")
flags.DEFINE_list("wald_patches", ["16", "32"], "MS crop sizes measured for the Wald objective.")
flags.DEFINE_integer("steps", 30, "Timed training steps (and 10x as many generator batches).")
flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
FLAGS = flags.FLAGS

# objective -> (batch size, synthetic fraction) of its flag files; crop sizes are the rows
SETTINGS = {"wald": (4, 0.3), "original": (2, 0.0)}


def _config(objective, ms_patch):
    from sipsa_tf.training import loop
    batch, synthetic = SETTINGS[objective]
    return loop.TrainConfig(data_dir=FLAGS.data_dir, log_dir="-", split=FLAGS.split,
                                 objective=objective, batch_size=batch, ms_patch=ms_patch,
                                 synthetic_fraction=synthetic, aligned_fraction=0.7)


def measure(objective, ms_patch):
    """Generator batches/s and network steps/s for one configuration.

    Returns:
        (generator batches per second, training steps per second).
    """
    from sipsa_tf.data import supervised
    from sipsa_tf.training import loop

    config = _config(objective, ms_patch)
    sources = loop.prepare_data(config)[0]
    displacement = (config.displacement() if objective == "wald"
                    else supervised.NO_DISPLACEMENT)
    stream = supervised.batches(sources, ms_patch, config.batch_size, seed=0,
                                displacement=displacement,
                                synthetic_fraction=config.synthetic_fraction or None)
    first = next(stream)
    n = 10 * FLAGS.steps
    start = time.perf_counter()
    for _ in range(n):
        next(stream)
    gen_rate = n / (time.perf_counter() - start)

    graph = loop.TrainGraph(config, test_ops=False)
    fetches = {"train": graph.train_op, "step": graph.step_after}
    with graph.session() as session:
        graph.initialize(session)
        feed = graph.feed(*first)
        for _ in range(FLAGS.warmup):
            session.run(fetches, feed)
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            session.run(fetches, feed)
        step_rate = FLAGS.steps / (time.perf_counter() - start)
    return gen_rate, step_rate


def main(argv):
    del argv
    print("%-9s %6s %6s %16s %14s %14s" % ("objective", "batch", "MS", "generator it/s",
                                             "network it/s", "gen/network"))
    for objective in FLAGS.objectives:
        patches = [int(p) for p in FLAGS.wald_patches] if objective == "wald" else [32]
        for patch in patches:
            gen_rate, step_rate = measure(objective, patch)
            print("%-9s %6d %6d %16.1f %14.2f %14.1f" % (
                objective, SETTINGS[objective][0], patch, gen_rate, step_rate,
                gen_rate / step_rate), flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
