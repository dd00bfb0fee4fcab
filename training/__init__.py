"""Training and evaluation (arrives with issue 3). Knows no Qt and no app."""
