"""Gathers the domain routers under ``/api/v1`` (each domain adds its ``endpoints.router``)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
