"""Container runtime adapters: the only code that talks to the Docker engine."""
