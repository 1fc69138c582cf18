"""The import layers of DESIGN.md, enforced by walking every module's imports."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "llmlab"

TORCH_FREE = {"core", "data", "text", "tokenizers", "classic", "evaluate"}
BELOW_TORCH = {"core", "data", "text", "tokenizers", "classic", "evaluate"}
# package -> llmlab packages it may import (besides itself)
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "text": {"data", "core"},
    "tokenizers": {"text", "data", "core"},
    "classic": {"text", "tokenizers", "data", "core"},
    "evaluate": {"classic", "text", "tokenizers", "data", "core"},
    "nn": {"core"},
    "models": {"nn"} | BELOW_TORCH,
    "generate": {"models", "nn"} | BELOW_TORCH,
    "train": {"models", "nn"} | BELOW_TORCH,
    "dist": {"train", "models", "nn"} | BELOW_TORCH,
    "adapt": {"train", "generate", "models", "nn"} | BELOW_TORCH,
    "rl": {"train", "generate", "models", "nn", "adapt"} | BELOW_TORCH,
    "serve": {"train", "generate", "models", "nn", "adapt"} | BELOW_TORCH,
    "pipeline": {"serve", "rl", "adapt", "dist", "train", "generate", "models", "nn"} | BELOW_TORCH,
    "cli": {"pipeline", "serve", "rl", "adapt", "dist", "train", "generate", "models", "nn"} | BELOW_TORCH,
}


def _imports(path: Path):
    """(imported module, is_top_level) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, id(node) in top


def _package_of(path: Path) -> str | None:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else None


def test_every_package_is_in_the_layer_table():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(ALLOWED), f"add {packages - set(ALLOWED)} to the layer table (and DESIGN.md)"


def test_imports_follow_the_layers():
    bad = []
    for path in SRC.rglob("*.py"):
        pkg = _package_of(path)
        if pkg is None:
            continue
        for mod, _ in _imports(path):
            parts = mod.split(".")
            if parts[0] == "llmlab" and len(parts) > 1 and parts[1] in ALLOWED:
                target = parts[1]
                if target != pkg and target not in ALLOWED[pkg]:
                    bad.append(f"{path.relative_to(SRC)} imports {mod}")
    assert not bad, "imports against DESIGN.md layers:\n" + "\n".join(bad)


def test_torch_free_packages_have_no_top_level_torch_import():
    bad = []
    for path in SRC.rglob("*.py"):
        if _package_of(path) in TORCH_FREE:
            bad += [f"{path.relative_to(SRC)}: {m}" for m, top in _imports(path) if top and m.split(".")[0] == "torch"]
    assert not bad, bad


def test_torch_free_packages_import_without_torch():
    present = sorted(p for p in TORCH_FREE if (SRC / p / "__init__.py").exists())
    code = (
        "import sys; import llmlab.cli, " + ", ".join(f"llmlab.{p}" for p in present) + "\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_layer_checker_catches_a_violation(tmp_path):
    # the checker itself must be able to fail: a data module importing llmlab.models is flagged
    f = tmp_path / "bad.py"
    f.write_text("import os\nfrom llmlab.models import x\n")
    mods = [m for m, _ in _imports(f)]
    assert "llmlab.models" in mods and "models" not in ALLOWED["data"]


def test_cli_help_does_not_load_torch():
    # `llmlab --help` builds every command's flags; config modules must stay torch-free for that
    code = "import sys, llmlab.cli; llmlab.cli.build_parser(); assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_lazy_export_resolves():
    """A package's __all__ names modules and attributes by string; a typo would only show on first use."""
    import importlib

    for pkg in sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()):
        module = importlib.import_module(f"llmlab.{pkg}")
        for name in getattr(module, "__all__", []):
            assert getattr(module, name) is not None, f"llmlab.{pkg}.{name}"
