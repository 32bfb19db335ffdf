"""Digits recognition without a service: no Flask, Celery or Redis, no settings read here.

- ``recognise``: a batch of image files to one result each (the worker's and the local client's work).
- ``images/``: reading an image file into the 28x28 input MNIST's networks expect.
- ``numbers/``: a whole handwritten number: its digits found, cut and read together.
- ``runtimes/``: running a network (Keras, LiteRT, scikit-learn), checking a model file is fit to serve.
- ``training/``: networks, recipes and training on MNIST (and people's corrections).
- ``evaluation/``: how well and how cheaply a model reads MNIST, renderings of it, and numbers.
- ``mnist``: MNIST itself; ``shipped/``: the model the service ships with.

Limits and folders come in as arguments; the tools (``python -m model.<part> <tool>``) are the
one place settings are read (see ``model/cli.py``).
"""
