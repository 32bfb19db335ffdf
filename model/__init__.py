"""Digits recognition without a service: MNIST, preprocessing, networks, training, evaluation, the model store."""
