"""The training wizard: its pages, the learning-curve chart and the result page."""
