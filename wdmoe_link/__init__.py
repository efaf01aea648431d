"""semcom.wdmoe_link (placeholder package; filled by its own issue)."""
