"""Local services Pulse runs itself (or connects to, when configured as external)."""
