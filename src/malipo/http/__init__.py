"""What endpoints use: dependencies, the CamelModel base, error rendering for both surfaces,
the Idempotency-Key dependency, request middleware and route permissions."""
