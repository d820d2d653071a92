from toolbench.tools.weather.simulator import LANGS, PLACES, POSTCODES, UNITS, Weather

TOOL = Weather

__all__ = ["LANGS", "PLACES", "POSTCODES", "TOOL", "UNITS", "Weather"]
