"""docs/templates.md's example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_templates_doc_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "templates.md").read_text(), flags=re.S)
    assert blocks, "docs/templates.md has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "<|im_start|>system\nTools:\n"
        '{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object",'
        '"required":["city"],"properties":{"city":{"type":"string"}}}}<|im_end|>\n'
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n\n"
        "{'index': 0, 'name': 'get_weather', 'arguments': {'city': 'Paris'}}\n"
        "['completion', 'tools']\n")
