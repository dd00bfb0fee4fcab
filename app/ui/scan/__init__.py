"""The scan view: the results table and its Qt model, the histogram, the detail view with the image viewer,
previews and thumbnails."""
