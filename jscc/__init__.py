"""semcom.jscc (placeholder package; filled by its own issue)."""
