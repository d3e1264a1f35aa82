"""Helpers shared by every pipeline stage (clients, progress output)."""
