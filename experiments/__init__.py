"""Experiment recipes, configs, the ``semcom`` command line and result folders."""
