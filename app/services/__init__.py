"""The jobs that the command line and the desktop app share: scan, train, calibrate, build an ensemble. No Qt
here: the GUI runs these same functions on its worker threads."""
