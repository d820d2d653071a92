"""The foundation, below everything else: record types, atomic file I/O, run records, the typed run
summaries and their one writer, the table renderer, device choice, the error classes. Imports
nothing of toolbench outside itself."""
