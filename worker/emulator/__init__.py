"""A local exchange emulator (Binance spot public protocol) with fault injection."""

from worker.emulator.server import Emulator, EmulatorConfig

__all__ = ["Emulator", "EmulatorConfig"]
