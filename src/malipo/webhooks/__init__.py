"""Telling merchants what happened: callbacks to their URLs, retried, every attempt recorded."""
