"""A fake Primary API server for tests, benchmarks and demos without a real Primary host."""

from cotiza.fake_primary.engine import (
    Instrument,
    MarketEngine,
    ReplayEngine,
    SimEngine,
    load_instruments,
    sim_instruments,
)
from cotiza.fake_primary.faults import MALFORMED_FRAMES, Faults
from cotiza.fake_primary.server import ClientFrame, FakePrimary

__all__ = [
    "MALFORMED_FRAMES",
    "ClientFrame",
    "FakePrimary",
    "Faults",
    "Instrument",
    "MarketEngine",
    "ReplayEngine",
    "SimEngine",
    "load_instruments",
    "sim_instruments",
]
