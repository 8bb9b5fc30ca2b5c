"""Moved to ``pyllama.options``; only ``cli/repl.py`` still imports from here.

Delete this module when the CLI imports ``pyllama.options`` (its import
cycles are being reworked on another branch).
"""

from pyllama.options import parse_parameter_text

__all__ = ["parse_parameter_text"]
