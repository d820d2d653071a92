"""The generator: templates → validated, executed, deduplicated samples (canonical JSONL)."""

from toolbench.generate.engine import GenerateConfig, SampleFactory
from toolbench.generate.writer import GenerateReport, generate

__all__ = ["GenerateConfig", "GenerateReport", "SampleFactory", "generate"]
