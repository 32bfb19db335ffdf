"""The model the service ships with, and serves until another version is activated.

``make train`` writes all four files: the strong recipe's network, its LiteRT export, its card
(what MNIST test accuracy it reached, how it was trained), and the number scoring fitted to it.
"""

from pathlib import Path

FOLDER = Path(__file__).parent
SHIPPED_MODEL = FOLDER / "default.keras"
SHIPPED_LITERT = FOLDER / "default.tflite"
SHIPPED_CARD = FOLDER / "default.json"
SHIPPED_WEIGHTS = FOLDER / "number_scoring.json"
