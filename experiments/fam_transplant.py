"""Put a kernel branch trained alone by ``car_probe.py`` into a SIPSA-Net checkpoint.

    .venv/bin/python experiments/fam_transplant.py --probe experiments/runs/car_probe_n \\
        --base checkpoints/wald_fam_l --out logs/fam_transplant_n

SIPSA-Net (Lee, Seo, Kim, CVPR 2021); docs/training.md, "The feature alignment module".
``experiments/car_probe.py`` (variant ``original``) trains the kernel branch's eleven
convolutions with SIPSA-Net's own layers on the network's own normalised inputs, nothing else in
the graph. This writes a checkpoint that holds every network variable of ``--base`` except
``w_conv01``-``b_conv11``, which come from the probe's latest saved state (``--probe``, its
``original`` folder). The result restores like any bundled checkpoint (same names and shapes,
network variables only) and carries ``--base``'s ``flags.txt``, so its forward graph options
(``--align_statistics``) stay the base's. It is the warm start of a stage that then fits the
fusion to the new kernel branch (experiments/fam_stage_n.flags).
"""
import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_SCOPE = "probe"
PROBE_VARIANT = "original"


def probe_name(network_name):
    """``op_net/G/w_conv07`` -> ``probe/w_c07`` (car_probe.py's name for the same convolution)."""
    kind, number = network_name.rsplit("/", 1)[1].split("_conv")
    return "%s/%s_c%s" % (PROBE_SCOPE, kind, number)


def transplant(probe_dir, base, out):
    """Writes ``out`` (a new folder): ``base``'s network with the probe's kernel branch.

    Returns:
        (probe prefix, base prefix, number of variables replaced).
    """
    import tensorflow as tf
    from sipsa_tf import checkpoints
    from sipsa_tf.core import network

    state = os.path.join(probe_dir, PROBE_VARIANT)
    probe_prefix = tf.train.latest_checkpoint(state)
    if probe_prefix is None:
        raise SystemExit("fam_transplant: %s: no probe checkpoint (run car_probe.py with "
                         "--state %s --variants %s)" % (state, probe_dir, PROBE_VARIANT))
    base_prefix = checkpoints.resolve(base)
    probe_reader = tf.train.load_checkpoint(probe_prefix)
    base_reader = tf.train.load_checkpoint(base_prefix)
    kernel = network.kernel_branch_names()
    values = {}
    for name in sorted(base_reader.get_variable_to_shape_map()):
        values[name] = base_reader.get_tensor(name)
        if name in kernel:
            new = probe_reader.get_tensor(probe_name(name))
            if new.shape != values[name].shape:
                raise SystemExit("fam_transplant: %s in %s has shape %s, %s in %s has %s" % (
                    probe_name(name), probe_prefix, new.shape, name, base_prefix,
                    values[name].shape))
            values[name] = new
    missing = kernel - set(values)
    if missing:
        raise SystemExit("fam_transplant: %s lacks %s" % (base_prefix, ", ".join(sorted(missing))))

    if os.path.exists(out):
        raise SystemExit("fam_transplant: %s exists; choose a new --out" % out)
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    graph = tf.Graph()
    with graph.as_default():
        variables = {name: tf.compat.v1.Variable(value, name=name)
                     for name, value in values.items()}
        saver = tf.compat.v1.train.Saver(var_list=variables, save_relative_paths=True)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, os.path.join(tmp, "model.ckpt"), global_step=0,
                       write_meta_graph=False)
    flags_file = os.path.join(os.path.dirname(base_prefix), checkpoints.FLAGS_FILE)
    if os.path.exists(flags_file):
        shutil.copy(flags_file, os.path.join(tmp, checkpoints.FLAGS_FILE))
    os.replace(tmp, out)
    return probe_prefix, base_prefix, len(kernel)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", required=True, help="car_probe.py's --state folder")
    parser.add_argument("--base", required=True, help="checkpoint (folder or prefix)")
    parser.add_argument("--out", required=True, help="new checkpoint folder")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(HERE, ".."))
    probe_prefix, base_prefix, replaced = transplant(args.probe, args.base, args.out)
    print("fam_transplant: %s = %s with %d kernel-branch variables from %s"
          % (args.out, base_prefix, replaced, probe_prefix))


if __name__ == "__main__":
    main()
