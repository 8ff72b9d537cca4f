"""The HTTP API (FastAPI): thin routes over :mod:`tidings.services`."""
