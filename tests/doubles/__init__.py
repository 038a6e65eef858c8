"""Real HTTP servers standing in for external services in tests and benchmarks."""
