"""A Kite-compatible simulator and paper broker (`hmt sim`).

It speaks Kite Connect v3 on loopback (REST, the binary ticker, postbacks) so
the engine, the official clients and the tests can run without Kite's servers.
Entry point for tests: `hmt.sim.simulator.Simulator`.
"""
