"""Reporting: results folders (config, seed, package versions, CSV, plots, summary, manifest;
atomic writes, resume checks) and console output shared by every recipe."""
