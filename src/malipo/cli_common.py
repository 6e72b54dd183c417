"""What every ``malipo`` command starts with: settings (or a clear refusal) and logging."""

from __future__ import annotations

import typer
from rich.console import Console

from malipo.config import ConfigurationError, Settings, load_settings
from malipo.core.logging import configure_logging

console = Console(stderr=True)


def settings_or_exit() -> Settings:
    """Load settings and configure logging; exit 2 with the reason if malipo cannot start."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        console.print(f"[red]malipo cannot start:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(json=settings.log_json, level=settings.log_level)
    return settings
