"""Experiments and statistics built on netinit (netinit never imports this package)."""
