"""Forensight's detection engine: architectures, model cards, the model library, image decoding and
batched streaming inference. Knows nothing of Qt or the app."""
