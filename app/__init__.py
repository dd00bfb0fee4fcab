"""The product around the engine: the `forensight` command, the case database, exports."""
__version__ = "0.1.0"
