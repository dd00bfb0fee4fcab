"""The model manager and its dialogs (import, calibrate, create an ensemble)."""
