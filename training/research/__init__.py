"""Tokenization studies: `fillpoint research ...` writes markdown reports under docs/research/."""
