"""python -m model.evaluation digits|robustness|compare|cost|several [options]: how well and how cheaply models read."""

import sys

from model.cli import run
from settings import get_settings

TOOLS = {
    "digits": "model.evaluation.digits",
    "robustness": "model.evaluation.robustness",
    "compare": "model.evaluation.compare",
    "cost": "model.evaluation.cost",
    "several": "model.evaluation.several",
}

settings = get_settings()
sys.exit(run("evaluation", TOOLS, sys.argv[1:], settings.mnist_dir, settings.tf_cpp_min_log_level))
