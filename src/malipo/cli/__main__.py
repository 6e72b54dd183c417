"""`python -m malipo.cli`: the same commands as the `malipo` script."""

from malipo.cli import app

app()
