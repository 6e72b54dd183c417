"""Daily reconciliation of malipo's books against the rails' own records."""
