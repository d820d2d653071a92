"""The pipelines of `toolbench/`, in data-path order (later stages import earlier ones, never the
reverse): `generate` and `export`, then `tasks` (making frozen task files), then `categories` and
`bfcl_import`, then `results`, then `evaluate`. distill and the retriever are pipelines too, in
their own top-level folders (docs/ARCHITECTURE.md)."""
