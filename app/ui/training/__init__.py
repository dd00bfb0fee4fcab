"""The training wizard: its pages, the learning-curve chart, the result page and the training worker."""
