"""Configuration: models of the JSON files (in mcp-proxy-server's formats), their loader, and environment settings."""
