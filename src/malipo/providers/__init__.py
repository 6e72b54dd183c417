"""Upstream providers: one package per rail (its client, simulator and wire shapes)."""
