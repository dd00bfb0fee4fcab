"""The case: the SQLite database of one investigation (store.py holds all of its SQL and migrations), the ground
truth its folder names imply, and its CSV export."""
