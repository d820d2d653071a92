"""Simulated tool APIs, one sub-package per domain (installed as `toolbench.tools`)."""
