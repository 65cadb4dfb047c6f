"""The shopper's website (Jinja2 + htmx), mounted at /."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROUTES: list = []


def template_config() -> Any:
    from litestar.contrib.jinja import JinjaTemplateEngine
    from litestar.template.config import TemplateConfig

    return TemplateConfig(directory=Path(__file__).parent / "templates", engine=JinjaTemplateEngine)
