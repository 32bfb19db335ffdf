"""python -m model.images show IMAGE --show OUT.png: the 28x28 input the network sees of an image."""

import sys

from model.cli import run
from settings import get_settings

TOOLS = {"show": "model.images.preprocess"}

settings = get_settings()
sys.exit(run("images", TOOLS, sys.argv[1:], settings.mnist_dir, settings.tf_cpp_min_log_level))
