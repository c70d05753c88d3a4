"""Configuration: models of the seed's JSON files, their loader, and environment settings."""
