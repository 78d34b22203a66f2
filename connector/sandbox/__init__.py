"""A faithful local SendPulse API for tests, the demo and benchmarks (see README.md here)."""
