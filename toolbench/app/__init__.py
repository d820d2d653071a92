"""The application runs (below the commands, above the pipelines): `make demo`'s whole run
(`demo`), the OpenAI-compatible server (`server`), the leaderboard and the HTML report (`leaderboard`,
`report`, `report_plots`)."""
