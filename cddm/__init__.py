"""semcom.cddm (placeholder package; filled by its own issue)."""
