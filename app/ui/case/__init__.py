"""The case in the window: opening and creating it, the rows it shows, and its CSV and PDF exports."""
