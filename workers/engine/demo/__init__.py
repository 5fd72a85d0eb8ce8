"""Building blocks of the demo scenario; the public entry point is ``workers.engine.demo_data``."""
