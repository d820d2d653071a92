from toolbench.tools.trip_booking.simulator import ROOM_TYPES, TRANSPORTATIONS, TripBooking
from toolbench.tools.trip_booking.values import DATE, LOC

TOOL = TripBooking

__all__ = ["DATE", "LOC", "ROOM_TYPES", "TOOL", "TRANSPORTATIONS", "TripBooking"]
