"""switch/media package."""
