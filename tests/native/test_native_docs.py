"""docs/bindings.md examples run as written; the stubs cover the module."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from pyllama import _native

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


# What each example prints when it got to its end, in document order.
EXAMPLE_DONE = ["best:", "ranked:", "devices:", "continuation:"]


def test_bindings_doc_example_runs(model_path, tmp_path):
    blocks = python_blocks((ROOT / "docs" / "bindings.md").read_text())
    assert len(blocks) == len(EXAMPLE_DONE), "docs/bindings.md examples changed; update EXAMPLE_DONE"
    mmproj = tmp_path / "mmproj.gguf"
    reranker = tmp_path / "reranker.gguf"
    env = {"PYLLAMA_MODEL": str(model_path), "PYLLAMA_MMPROJ": str(mmproj), "PYLLAMA_RERANKER": str(reranker),
           "SMOLLM2_GGUF": str(model_path), "PATH": "/usr/bin:/bin"}
    for kind, out in (("mmproj", mmproj), ("reranker", reranker)):
        subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "make_tiny_models.py"), kind,
                        str(out)], check=True, timeout=120, env=env)
    for i, (code, done) in enumerate(zip(blocks, EXAMPLE_DONE)):
        script = tmp_path / f"example_{i}.py"
        script.write_text(code)
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                timeout=300, env=env)
        assert result.returncode == 0, result.stderr
        assert done in result.stdout


def test_stubs_cover_public_names():
    tree = ast.parse((ROOT / "src" / "pyllama" / "_native.pyi").read_text())
    stubbed = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    stubbed |= {t.id for node in tree.body if isinstance(node, ast.AnnAssign) for t in [node.target]
                if isinstance(t, ast.Name)}
    public = {name for name in dir(_native) if not name.startswith("_")}
    public -= {"np"}
    missing = public - stubbed
    assert not missing, f"_native.pyi lacks {sorted(missing)}"
    for cls in ("Model", "Context", "Batch", "Sampler", "ChatTemplates", "Projector", "Bitmap", "Chunks", "Chunk"):
        node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        members |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
        actual = {m for m in dir(getattr(_native, cls)) if not m.startswith("_")}
        assert not actual - members, f"{cls}: stubs lack {sorted(actual - members)}"
