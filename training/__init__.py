"""Training and evaluation: data checks, recipes, the trainer, metrics and reports. Knows no Qt and no app."""
