"""The model's tools on the command line: ``python -m model.<part> <tool> [options]``.

Each part's ``__main__`` is the one place its tools read the service's settings (where MNIST is,
TensorFlow's log level); the tools themselves take everything as arguments.
"""

from __future__ import annotations

import importlib
import sys

from model.runtimes import tensorflow_setup


def run(part: str, tools: dict[str, str], argv: list[str], mnist_dir: str, tf_log_level: str) -> int:
    """Run the tool ``argv[0]`` names (the ``main`` of module ``tools[argv[0]]``) on the rest of ``argv``."""
    if not argv or argv[0] not in tools:
        print(f"usage: python -m model.{part} {{{','.join(tools)}}} [options]  (--help after a tool)", file=sys.stderr)
        return 2
    tensorflow_setup.set_log_level(tf_log_level)  # before any tool imports TensorFlow
    return importlib.import_module(tools[argv[0]]).main(argv[1:], mnist_dir=mnist_dir)
