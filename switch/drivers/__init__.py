"""switch/drivers package."""
