"""Training and evaluation, one code path for the CLI and the desktop wizard. Knows no Qt and no app.

data (discovery, integrity checks, splits) and recipes (plain data) feed the trainers: trainer.fit (one epoch,
evaluate, checkpoint and stop rule as separate steps) and probe (a linear head on a frozen foundation-model
tower), which share run (events, result, seeding, the card's account of the data). metrics, evaluate,
calibration, ensemble and plots measure and report the models they make."""
