"""Reading an image file (PNG, JPEG, ...) into the 28x28 input the networks expect, within bounds on its cost."""
