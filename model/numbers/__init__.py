"""Whole handwritten numbers: one line of ink cut into pieces, grouped into digits, the likeliest reading."""
