"""Small widgets and helpers shared by every view: palette, path fields, message boxes, settings, QImage
conversion."""
