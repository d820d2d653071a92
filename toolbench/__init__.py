"""toolbench: a tool-manipulation benchmark, a synthetic function-calling data generator, and a
trainer/scorer of function-calling draft models for speculative decoding."""

__version__ = "0.1.0"
