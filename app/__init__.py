"""Edge of Chaos: the Qt application. Knows ``core``; ``core`` never knows ``app``."""

__version__ = "0.1.0"
