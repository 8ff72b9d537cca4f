"""Transports: the sending side of the engine's ``Transport`` port."""
