"""The generator: templates → validated, executed, deduplicated samples (canonical JSONL)."""

from toolbench.pipelines.generate.engine import GenerateConfig, SampleFactory
from toolbench.pipelines.generate.writer import GenerateReport, generate

__all__ = ["GenerateConfig", "GenerateReport", "SampleFactory", "generate"]
