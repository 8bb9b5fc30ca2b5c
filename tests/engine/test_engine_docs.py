"""docs/engine.md's example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pyllama import _native

ROOT = Path(__file__).resolve().parents[2]


def test_engine_doc_example_runs(engine_model: _native.Model, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "engine.md").read_text(), flags=re.S)
    assert blocks, "docs/engine.md has no python example"
    for i, code in enumerate(blocks):
        script = tmp_path / f"example_{i}.py"
        script.write_text(code)
        env = {"PYLLAMA_MODEL": engine_model.path, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr
        assert "Paris" in result.stdout and "[" in result.stdout, result.stdout
