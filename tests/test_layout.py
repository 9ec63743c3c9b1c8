"""Package layout rules (issue 10): one home per rule, checked through every entry point.

* The PAN/MS pair rule gives the same verdict and the same sentence through the Python API, the
  scene tool, the trainer's data checks, the .mat converter and the evaluation loader.
* Files written through a temporary name get the mode of an ordinary new file (0o666 & ~umask).
* The scene tool, the evaluation suite and scene adaptation do not import the training loop.
* The command lines turn user errors (and OSError) into one line, and keep a bug's traceback.
"""
import os
import stat
import sys

import numpy as np
import pytest
import scipy.io
import tifffile

from sipsa_tf import data, errors, scene
from sipsa_tf.evaluation import scenes as evaluation_scenes
from sipsa_tf.io import validation
from sipsa_tf.io import pairs
from sipsa_tf.utils import files

from conftest import QUIET_TF, REPO_ROOT, run_command, write_pair

MS_SIZE = (24, 24)  # large enough for every entry point's minimum (evaluation: 20)
# (PAN rows, PAN columns) against MS_SIZE: one that fits and four that do not.
GOOD = (96, 96)
BAD = [(94, 96), (48, 48), (96, 100), (100, 96), (97, 97)]
# 97 x 97: surplus the training reader crops (3 rows/columns at most); everyone else refuses it.
CROPPED_BY_TRAINER = (97, 97)


def _tiffs(directory, pan_size, stem="img"):
    """A test folder (RGB/, PAN/) holding one uint16 pair; returns (ms path, pan path)."""
    rng = np.random.default_rng(0)
    ms = rng.integers(1, 2000, MS_SIZE + (3,), dtype=np.uint16)
    pan = rng.integers(1, 2000, pan_size, dtype=np.uint16)
    return write_pair(directory, ms, pan, stem, ms_options=dict(photometric="rgb"))


def _mat(path, pan_size):
    rng = np.random.default_rng(1)
    scipy.io.savemat(path, {"I_MS_LR": rng.integers(1, 2000, MS_SIZE + (4,)).astype(np.uint16),
                            "I_PAN": rng.integers(1, 2000, pan_size).astype(np.uint16),
                            "L": 11})
    return path


def _verdicts(tmp_path, pan_size):
    """{entry point: (error message or None, expected message)} for one PAN size."""
    out = {}
    directory = str(tmp_path / ("%dx%d" % pan_size))
    ms_path, pan_path = _tiffs(directory, pan_size)

    def attempt(call):
        try:
            call()
        except errors.UserError as err:
            return str(err)
        return None

    ms = np.full(MS_SIZE + (3,), 0.5, np.float32)
    pan = np.full(pan_size, 0.5, np.float32)
    out["api"] = (attempt(lambda: validation.check_pair(ms, pan, 5)),
                  pairs.size_problem("pan", pan_size, "ms", MS_SIZE))
    out["scene"] = (attempt(lambda: scene.pansharpen_scene(
        None, pan_path, ms_path, os.path.join(directory, "out.tif"))),
        pairs.size_problem(pan_path, pan_size, ms_path, MS_SIZE))
    pair = data.Pair("img", ms_path, pan_path)
    message = attempt(lambda: data.check_pairs([pair], 5, what="training data"))
    if message is not None:  # one problem: "<what>: <problem>"
        assert message.startswith("training data: "), message
        message = message[len("training data: "):]
    out["trainer data"] = (message, pairs.size_problem(
        pan_path, pan_size, ms_path, MS_SIZE, crop=pairs.TRAINING_CROP))
    mat = _mat(os.path.join(directory, "img.mat"), pan_size)
    mat_expected = pairs.size_problem(mat + ": I_PAN", pan_size, "I_MS_LR", MS_SIZE)
    out["converter"] = (attempt(lambda: data.convert_mat(mat, os.path.join(directory, "conv"))),
                        mat_expected)
    out["evaluation"] = (attempt(lambda: evaluation_scenes.load_mat(mat)), mat_expected)
    return out


def test_size_problem_wording():
    assert pairs.size_problem("p.tif", (96, 96), "m.tif", (24, 24)) is None
    assert pairs.size_problem("p.tif", (94, 99), "m.tif", (24, 24)) == (
        "p.tif is 94 x 99 pixels (rows x columns) but must be exactly 4x m.tif (24 x 24), i.e. "
        "96 x 96: off by -2 rows and +3 columns")
    assert pairs.size_problem("p", (99, 96), "m", (24, 24), crop=3) is None
    assert pairs.size_problem("p", (100, 96), "m", (24, 24), crop=3) is not None


@pytest.mark.parametrize("pan_size", [GOOD] + BAD)
def test_pair_rule_same_verdict_and_message_everywhere(tmp_path, pan_size):
    verdicts = _verdicts(tmp_path, pan_size)
    for where, (message, expected) in verdicts.items():
        assert message == expected, where
    refused = {where for where, (message, _) in verdicts.items() if message is not None}
    if pan_size == GOOD:
        assert not refused
    elif pan_size == CROPPED_BY_TRAINER:  # the original's training reader crops the surplus
        assert refused == set(verdicts) - {"trainer data"}
    else:
        assert refused == set(verdicts)
        # One sentence: the same words around the file names.
        words = {m[m.index(" is "):].split(" but must be exactly 4x ")[0] for m, _ in
                 verdicts.values()}
        offs = {m[m.index(", i.e. "):] for m, _ in verdicts.values()}
        assert len(words) == 1 and len(offs) == 1, (words, offs)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_scene_tool_outputs_honour_the_umask(tmp_path, umask_027):
    ms_path, pan_path = _tiffs(str(tmp_path), (64, 64), "small")
    tifffile.imwrite(ms_path, np.random.default_rng(2).integers(
        1, 2000, (16, 16, 3), dtype=np.uint16), photometric="rgb")
    outputs = [str(tmp_path / name) for name in ("out.tif", "aligned.tif", "preview.png")]
    scene.pansharpen_scene(None, pan_path, ms_path, outputs[0], scene.SceneOptions(
        aligned_out=outputs[1], preview=outputs[2], tile=64, progress="off"))
    for path in outputs:
        assert _mode(path) == 0o666 & ~umask_027, path
    assert sorted(os.listdir(tmp_path)) == ["PAN", "RGB", "aligned.tif", "out.tif",
                                            "preview.png"]


def test_converter_outputs_honour_the_umask(tmp_path, umask_027):
    mat = _mat(str(tmp_path / "w.mat"), GOOD)
    info = data.convert_mat(mat, str(tmp_path / "out"))
    for path in (info["ms_path"], info["pan_path"]):
        assert _mode(path) == 0o666 & ~umask_027, path
    assert sorted(os.listdir(tmp_path / "out" / "RGB")) == ["w.tif"]  # no temporary left


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_helpers_give_ordinary_modes_and_clean_up(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = str(tmp_path / "a.txt")
        files.write_text(path, "x")
        assert _mode(path) == 0o666 & ~umask
        directory = files.temporary_directory(str(tmp_path / "set"))
        assert _mode(directory) == 0o777 & ~umask
        os.rmdir(directory)
        with pytest.raises(RuntimeError):
            with files.atomic_paths(str(tmp_path / "b"), str(tmp_path / "c")) as temporaries:
                assert all(os.path.exists(t) for t in temporaries)
                raise RuntimeError("stop")
        assert sorted(os.listdir(tmp_path)) == ["a.txt"]
    finally:
        os.umask(old)


def _python(code):
    """Runs ``code`` in a fresh interpreter (a clean sys.modules); returns its stdout."""
    result = run_command([sys.executable, "-c", code], timeout=300, env=QUIET_TF)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tools_do_not_import_the_training_loop():
    code = (
        "import sys\n"
        "from sipsa_tf import scene\n"
        "from sipsa_tf.evaluation import suite\n"
        "from sipsa_tf.training import adapt\n"
        "from sipsa_tf.training import optimizer\n"
        "import sipsa_tf.pansharpen\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('sipsa_tf'))\n"
        "assert 'sipsa_tf.training.loop' not in loaded, loaded\n"
        "assert 'sipsa_tf.train' not in loaded, loaded\n"
        "print('ok', len(loaded))\n")
    assert _python(code).startswith("ok")


def test_adapt_builds_its_optimiser_without_the_training_loop():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from sipsa_tf.training import adapt\n"
        "ms = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)\n"
        "pan = np.random.default_rng(1).random((32, 32)).astype(np.float32)\n"
        "adapter = adapt.Adapter(None, seed=0)\n"
        "adapter.adapt(ms, pan, steps=1, crop=8, batch=1)\n"
        "assert 'sipsa_tf.training.loop' not in sys.modules\n"
        "print('ok')\n")
    assert _python(code).strip().endswith("ok")


def test_cli_wrapper_turns_only_user_errors_into_one_line(capsys):
    from sipsa_tf.cli import common

    def user():
        raise data.DataError("x.tif: bad\nsecond line")

    def disk():
        raise FileNotFoundError(2, "No such file or directory", "y.tif")

    def bug():
        raise ValueError("a plain ValueError is a bug here")

    assert common.guarded(user) == 1
    assert capsys.readouterr().err == "error: x.tif: bad second line\n"
    assert common.guarded(disk) == 1
    assert "y.tif" in capsys.readouterr().err
    with pytest.raises(ValueError, match="a plain ValueError"):
        common.guarded(bug)
    with pytest.raises(ZeroDivisionError):
        common.guarded(lambda: 1 / 0)


def test_cli_wrapper_says_what_the_interrupt_line_says(capsys):
    from sipsa_tf.cli import common
    said = []

    def stop():
        said.append("body ran")
        raise KeyboardInterrupt

    assert common.guarded(stop, interrupted="stopped") == common.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "stopped\n"
    # a callable is asked at the time of the interrupt, after the body ran
    assert common.guarded(stop, interrupted=lambda: "stopped after %s" % said[-1]) == 130
    assert capsys.readouterr().err == "stopped after body ran\n"


def test_user_errors_share_one_base():
    from sipsa_tf import checkpoints, runlock
    from sipsa_tf.io import geotiff
    for cls in (data.DataError, checkpoints.CheckpointError, scene.SceneError,
                evaluation_scenes.EvaluationError, geotiff.RasterError, errors.InputError,
                runlock.DirectoryBusy):
        assert issubclass(cls, errors.UserError) and issubclass(cls, ValueError), cls


def test_ratio_constants_have_one_definition():
    """No module but sipsa_tf/constants.py assigns SCALE or MS_BANDS."""
    import re
    root = os.path.join(REPO_ROOT, "sipsa_tf")
    assigning = []
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    if re.search(r"^(SCALE|MS_BANDS)\s*=", f.read(), re.M):
                        assigning.append(os.path.relpath(path, root))
    assert assigning == ["constants.py"]


def _expand(text):
    """Brace expansion of one README tree entry: 'a/{b,c}.py' -> ['a/b.py', 'a/c.py']."""
    import re
    match = re.search(r"\{([^{}]*)\}", text)
    if not match:
        return [text]
    return [p for option in match.group(1).split(",")
            for p in _expand(text[:match.start()] + option.strip() + text[match.end():])]


def test_readme_tree_lists_every_module():
    import re
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme[readme.index("## How the code is laid out"):]
    block = section[section.index("```\nsipsa_tf/\n") + 4:]
    block = block[:block.index("```")]
    joined = re.sub(r",\s*\n\s*", ",", block)  # brace groups continued on the next line
    listed = set()
    for line in joined.splitlines()[1:]:
        for entry in re.findall(r"[\w/{},]+\.py", line):
            listed.update(_expand(entry))
    root = os.path.join(REPO_ROOT, "sipsa_tf")
    modules = {os.path.relpath(os.path.join(d, n), root)
               for d, _, names in os.walk(root) for n in names
               if n.endswith(".py") and n != "__init__.py"}
    assert listed == modules, (sorted(modules - listed), sorted(listed - modules))


def _import_graph():
    """{module: set of sipsa_tf modules it imports}, every import statement (also in functions).

    Importing ``a.b.c`` imports the packages ``a`` and ``a.b`` first, so those count as well
    (except a module's own packages)."""
    import ast
    root = os.path.join(REPO_ROOT, "sipsa_tf")
    modules = {}
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(directory, name), REPO_ROOT)[:-3]
                dotted = rel.replace(os.sep, ".")
                modules[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = (
                    os.path.join(directory, name))

    def with_parents(target):
        parts = target.split(".")
        return {".".join(parts[:i]) for i in range(2, len(parts) + 1)} & set(modules)

    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets |= with_parents(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                targets |= with_parents(base)
                targets |= {base + "." + a.name for a in node.names} & set(modules)
        # A module's own packages are initialised before it runs: no circle through them.
        graph[module] = targets - with_parents(module)
    return graph


def test_no_import_circle():
    """No module imports itself back through others (Tarjan's strongly connected components)."""
    graph = _import_graph()
    assert "sipsa_tf.evaluation.suite" in graph and "sipsa_tf.core.ops" in graph
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == [], circles


def test_no_alias_modules_and_no_test_named_product_files():
    """Every module in sipsa_tf/ holds code of its own: none swaps its sys.modules entry to
    re-export another, and none is named like a test file."""
    root = os.path.join(REPO_ROOT, "sipsa_tf")
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                assert not name.startswith("test"), os.path.join(directory, name)
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    assert "sys.modules[__name__] =" not in f.read(), os.path.join(directory, name)
