"""Recipes: the experiments behind the ``semcom`` subcommands (link curves, image evaluation,
CDDM evaluation, WDMoE, edge batching, the quickstart, training). Each writes one results
folder through :mod:`experiments.reporting`."""
