"""python -m model.training train|fragments [options]: train a network; look at the fragments it learns are no digit."""

import sys

from model.cli import run
from settings import get_settings

TOOLS = {"train": "model.training.train", "fragments": "model.training.fragments"}

settings = get_settings()
sys.exit(run("training", TOOLS, sys.argv[1:], settings.mnist_dir, settings.tf_cpp_min_log_level))
