"""Airports from the `airportsdata` package: IATA lookup and great-circle distance."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from jobgraph.core.memo import shared_cache

if TYPE_CHECKING:
    from airportsdata import Airport

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
CRUISE_SPEED_KMH = 800.0  # GUIDE §3.3

# Default pool for the generator: large European hubs and busy regional airports, so a day of
# 2-8 hops of 1-4 h fits the 00:05-23:00 window. Override with `jobgraph generate --airports`.
DEFAULT_AIRPORT_POOL: tuple[str, ...] = (
    "DUB", "LHR", "LGW", "MAN", "EDI", "AMS", "BRU", "CDG", "ORY", "NCE", "LYS", "FRA", "MUC", "BER",
    "HAM", "DUS", "ZRH", "GVA", "VIE", "PRG", "WAW", "KRK", "BUD", "CPH", "OSL", "ARN", "HEL", "MAD",
    "BCN", "PMI", "AGP", "LIS", "OPO", "FCO", "MXP", "VCE", "NAP", "ATH", "IST", "OTP", "SOF", "RIX",
)  # fmt: skip


@shared_cache()
def _iata_table() -> dict[str, Airport]:
    import airportsdata  # loaded once per process (also when a batch's group threads first ask together); ~0.1 s

    return airportsdata.load("IATA")


def is_known_iata(code: str) -> bool:
    return isinstance(code, str) and code in _iata_table()


def coordinates(code: str) -> tuple[float, float]:
    """(latitude, longitude) in degrees; KeyError if the code is unknown."""
    row = _iata_table()[code]
    return float(row["lat"]), float(row["lon"])


def haversine_km(a: str, b: str) -> float:
    lat1, lon1 = map(math.radians, coordinates(a))
    lat2, lon2 = map(math.radians, coordinates(b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def flight_minutes(a: str, b: str) -> float:
    """Block time between two airports at the constant cruise speed of GUIDE §3.3."""
    return haversine_km(a, b) / CRUISE_SPEED_KMH * 60
