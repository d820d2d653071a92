"""The core, above the foundation and below the tools: reading calls from answer text (`calls`),
the simulator base class and the tool registry, executing programs, episodes, scoring (BFCL's AST
checker too), task files (load, verify), prompts and chat messages, templating, model backends
(`backends`), their answer cache and HF generation helpers."""
