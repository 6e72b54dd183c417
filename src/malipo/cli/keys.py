"""``malipo keys generate``: fresh secrets for an install's environment (production needs both)."""

from __future__ import annotations

from typing import Annotated

import typer

from malipo.config import _SECRET_GENERATORS as SECRET_GENERATORS  # the format config.py reads

keys_app = typer.Typer(
    help="Secrets for the environment (MALIPO_SECRET_KEY, MALIPO_ENCRYPTION_KEY).", no_args_is_help=True
)


@keys_app.command("generate")
def generate(
    export: Annotated[bool, typer.Option("--export", help="Prefix each line with `export `")] = False,
) -> None:
    """Print a new MALIPO_SECRET_KEY and MALIPO_ENCRYPTION_KEY, one NAME=value line each.

    Append them to an env file (malipo keys generate >> .env); nothing is written or read.

    Generate them once per install and back them up: what one encryption key stored, another cannot read.
    """
    prefix = "export " if export else ""
    for name, make in SECRET_GENERATORS.items():
        print(f"{prefix}MALIPO_{name.upper()}={make()}")
