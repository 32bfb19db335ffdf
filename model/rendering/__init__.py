"""MNIST digits, and whole numbers of them, rendered the way people send them: the truth is known."""
