"""The commands (application layer): the Typer app and `main`, the installed `toolbench` command
(`main`), its sub-command groups (`train`, `distill`, `leaderboard`, `bfcl`) and the option types
and checks they share (`options`)."""
