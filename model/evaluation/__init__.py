"""How well and how cheaply a model reads: MNIST as given and as people send it, whole numbers, every recipe."""
