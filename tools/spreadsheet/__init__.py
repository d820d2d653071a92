from toolbench.tools.spreadsheet.simulator import TABLE_NAMES, TABLES, Spreadsheet

TOOL = Spreadsheet

__all__ = ["TABLES", "TABLE_NAMES", "TOOL", "Spreadsheet"]
