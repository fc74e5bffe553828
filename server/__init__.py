"""The colretrieve HTTP server (FastAPI): search, cited answers, OpenAI-compatible chat."""

from server.app import create_app, serve

__all__ = ["create_app", "serve"]
