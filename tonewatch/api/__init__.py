"""The HTTP API and web pages (FastAPI): `tonewatch api`."""
