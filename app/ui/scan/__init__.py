"""The scan view: the scan toolbar, the folder browser, the scan controller and its job, the results table and
its Qt model, the histogram, the detail view with the image viewer, Grad-CAM, previews and thumbnails."""
