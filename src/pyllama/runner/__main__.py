"""``python -m pyllama.runner --fd N``: host one model's engine (see process.py)."""

from __future__ import annotations

import argparse
import logging

from pyllama.runner.process import main


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pyllama.runner",
                                     description="pyllama model runner (started by the server)")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket to the server")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level name")
    return parser.parse_args()


if __name__ == "__main__":
    args = _parse()
    main(args.fd, getattr(logging, args.log_level.upper(), logging.WARNING))
