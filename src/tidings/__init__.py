"""Tidings: a self-hosted engine for email and SMS mailings."""

__version__ = "0.1.0"
