"""python -m model.numbers read|fit [options]: read one handwritten number; fit the scoring of readings."""

import sys

from model.cli import run
from settings import get_settings

TOOLS = {"read": "model.numbers.read_image", "fit": "model.numbers.fit_scoring"}

settings = get_settings()
sys.exit(run("numbers", TOOLS, sys.argv[1:], settings.mnist_dir, settings.tf_cpp_min_log_level))
