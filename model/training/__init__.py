"""Training on MNIST (and corrections): the networks, the recipes and their limits, augmentation, the training loop."""
