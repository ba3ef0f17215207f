"""The OpenAPI document as the app serves it at /docs/openapi.yaml (the checked-in openapi.yaml must equal it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from service import devmode
from service.app import create_app


def render_openapi_yaml() -> str:
    """Render the schema exactly as Litestar's YAML endpoint does."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(devmode.dev_settings(Path(tmp), None))
        schema = app.openapi_schema.to_schema()
    return yaml.dump(schema, default_flow_style=False)
