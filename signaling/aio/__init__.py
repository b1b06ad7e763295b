"""signaling/aio package."""
