"""Local infrastructure kit: real PostgreSQL, Redis, Envoy and services without Docker."""
