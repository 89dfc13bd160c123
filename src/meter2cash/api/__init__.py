"""The REST API (FastAPI): thin routes over the services; OpenAPI at /docs."""

from meter2cash.api.app import create_app

__all__ = ["create_app"]
