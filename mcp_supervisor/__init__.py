"""mcp-supervisor: a supervised, multi-process gateway for Model Context Protocol servers."""

__version__ = "0.1.0"
