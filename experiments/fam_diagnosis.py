"""Why does the FAM's softmax collapse? Gradients, Adam updates and saturation, measured.

    .venv/bin/python experiments/fam_diagnosis.py --out docs/fam_diagnosis.md \\
        [--checkpoint checkpoints/wald_stage1j] [--steps 1000] [--every 100]

SIPSA-Net (Lee, Seo, Kim, CVPR 2021); docs/training.md, "The feature alignment module". Three
measurements, all with the project's own training graph (:class:`TrainGraph`):

1. ``checkpoint``: at ``--checkpoint``, on one Wald batch (MS crop 32, batch 8, real training
   regions, displaced MS): per layer the gradient norm of the weights and of the biases, the
   median |gradient| per element against Adam's epsilon (1e-8), and the relative size of one
   Adam step (lr 1e-4) for the kernel branch and the rest.
2. ``saturation``: from the original random initialisation (``--seed``), ``--steps`` AdamW steps
   under each objective: ``original`` (the paper's unsupervised loss, MS crop ``--paper_crop``
   = 128, batch 4, full-resolution training regions; the paper's recipe) and ``wald`` (the
   reduced-resolution L1, crop 32, batch 8, 25% of crops aligned). Every ``--every`` steps: the
   mean largest softmax tap of a fixed batch, the share of pixels whose largest tap exceeds 0.99,
   the most frequent tap and its share, the gradient norms of the kernel branch and of the rest,
   and ||delta w|| / ||w|| of the kernel branch over the interval.

Writes a markdown report (``--out``) with the command line and the machine's time.
"""
import argparse
import os
import sys
import time

import numpy as np

ADAM_EPSILON = 1e-8


def _sources(objective, split_path, data_dir):
    from sipsa_tf.data import supervised
    split = supervised.load_split(split_path)
    regions = supervised.load_regions(split, "train", data_dir)
    if objective == "original":
        return [supervised.FullResImage(r) for r in regions]
    return [supervised.WaldImage(r) for r in regions]


def _graph(objective, patch, batch, seed, tmp):
    from sipsa_tf.training.config import TrainConfig
    from sipsa_tf.training.graph import TrainGraph
    config = TrainConfig(data_dir=tmp, log_dir=tmp, objective=objective, batch_size=batch,
                         ms_patch=patch, seed=seed, learning_rate=1e-4, lr_boundary=10 ** 9)
    return TrainGraph(config, test_ops=False)


def _layer_of(variable):
    return variable.op.name.split("/")[-1]


def checkpoint_gradients(args):
    """Part 1: gradients and Adam step sizes at a checkpoint (one Wald batch)."""
    from sipsa_tf.data import supervised
    from sipsa_tf.core import network
    graph = _graph("wald", 32, 8, args.seed, args.tmp)
    sources = _sources("wald", args.split, args.data_dir)
    batch = next(supervised.batches(sources, 32, 8, args.seed, supervised.Displacement()))
    branch = {v.op.name for v in network.kernel_branch_variables(graph.network_variables)}
    rows = []
    with graph.session() as session:
        graph.initialize(session)
        from sipsa_tf import checkpoints
        graph.restore_from(session, checkpoints.resolve(args.checkpoint))
        grads, weights, kernel = session.run(
            [graph.gradients, graph.network_variables, graph.forward.kernel],
            graph.feed(*batch))
    for v, g, w in zip(graph.network_variables, grads, weights):
        # first Adam step from zero moments: lr * g / (|g| + eps) element-wise
        step = 1e-4 * g / (np.abs(g) + ADAM_EPSILON)
        rows.append({"layer": _layer_of(v), "branch": v.op.name in branch,
                     "grad_norm": float(np.linalg.norm(g)),
                     "median_abs_grad": float(np.median(np.abs(g))),
                     "below_eps": float(np.mean(np.abs(g) < ADAM_EPSILON)),
                     "step_over_weight": float(np.linalg.norm(step) / (np.linalg.norm(w)
                                                                      + 1e-30))})
    return rows, kernel


def saturation(args, objective):
    """Part 2: training from the random initialisation; the softmax over time."""
    from sipsa_tf.data import supervised
    from sipsa_tf.core import network
    patch, batch = (args.paper_crop, 4) if objective == "original" else (32, 8)
    graph = _graph(objective, patch, batch, args.seed, args.tmp)
    sources = _sources(objective, args.split, args.data_dir)
    disp = supervised.Displacement(2.0, 0.5, 0.25) if objective == "wald" else None
    stream = supervised.batches(sources, patch, batch, args.seed,
                                disp or supervised.NO_DISPLACEMENT)
    fixed = next(supervised.batches(sources, patch, batch, args.seed + 1,
                                    disp or supervised.NO_DISPLACEMENT))
    branch = network.kernel_branch_variables(graph.network_variables)
    names = [v.op.name for v in graph.network_variables]
    index = [names.index(v.op.name) for v in branch]
    rest = [i for i in range(len(graph.network_variables)) if i not in index]
    rows = []
    start = time.time()
    with graph.session() as session:
        graph.initialize(session)
        previous = session.run(branch)
        for step in range(args.steps + 1):
            if step % args.every == 0:
                kernel, grads = session.run([graph.forward.kernel, graph.gradients],
                                            graph.feed(*fixed))
                now = session.run(branch)
                top = kernel.max(axis=-1)
                arg = kernel.argmax(axis=-1).ravel()
                mode = int(np.bincount(arg, minlength=81).argmax())
                delta = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(now, previous)))
                norm = np.sqrt(sum(np.sum(a ** 2) for a in now))
                rows.append({
                    "objective": objective, "step": step, "max_tap": float(top.mean()),
                    "one_hot_share": float(np.mean(top > 0.99)),
                    "mode_tap": "(%+d, %+d)" % (mode // 9 - 4, mode % 9 - 4),
                    "mode_share": float(np.mean(arg == mode)),
                    "grad_branch": float(np.sqrt(sum(np.sum(grads[i] ** 2) for i in index))),
                    "grad_rest": float(np.sqrt(sum(np.sum(grads[i] ** 2) for i in rest))),
                    "update_ratio": float(delta / norm), "seconds": time.time() - start})
                previous = now
                print("%s step %d max tap %.3f one-hot %.2f mode %s %.2f (%.0f s)" % (
                    objective, step, rows[-1]["max_tap"], rows[-1]["one_hot_share"],
                    rows[-1]["mode_tap"], rows[-1]["mode_share"], rows[-1]["seconds"]),
                    file=sys.stderr, flush=True)
            if step < args.steps:
                session.run(graph.train_op, graph.feed(*next(stream)))
    return rows


def _table(rows, columns):
    lines = ["| %s |" % " | ".join(columns), "|" + " --- |" * len(columns)]
    for r in rows:
        lines.append("| %s |" % " | ".join(
            ("%.3g" % r[c]) if isinstance(r[c], float) else str(r[c]) for c in columns))
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint", default="checkpoints/wald_stage1j")
    parser.add_argument("--split", default="experiments/grip_split_val.json")
    parser.add_argument("--data_dir", default="../shared/data/grip")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--paper_crop", type=int, default=128)
    parser.add_argument("--objectives", default="wald,original")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default="/tmp/fam_diagnosis")
    args = parser.parse_args(argv)
    os.makedirs(args.tmp, exist_ok=True)
    start = time.time()
    parts = ["# FAM diagnosis\n", "Command: `python experiments/fam_diagnosis.py %s`\n"
             % " ".join(argv)]
    rows, kernel = checkpoint_gradients(args)
    parts.append("## Gradients at %s (one Wald batch, crop 32, batch 8)\n\nlargest tap: mean "
                 "%.4f, share > 0.99: %.3f. `step/weight`: the relative size of a first Adam "
                 "step (lr 1e-4) of the layer; `below eps`: the share of elements whose |grad| "
                 "is below Adam's epsilon 1e-8.\n\n%s" % (
                     args.checkpoint, kernel.max(-1).mean(), np.mean(kernel.max(-1) > 0.99),
                     _table(rows, ["layer", "branch", "grad_norm", "median_abs_grad",
                                   "below_eps", "step_over_weight"])))
    for objective in [o for o in args.objectives.split(",") if o]:
        sat = saturation(args, objective)
        parts.append("## Saturation from the random initialisation: %s objective\n\n%s" % (
            objective, _table(sat, ["step", "max_tap", "one_hot_share", "mode_tap",
                                    "mode_share", "grad_branch", "grad_rest", "update_ratio",
                                    "seconds"])))
    parts.append("Total time %.0f s.\n" % (time.time() - start))
    from sipsa_tf.evaluation import reports
    reports.atomic_write(args.out, "\n".join(parts).encode("utf-8"))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
