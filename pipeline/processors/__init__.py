"""Stream processors: pure batch logic here, thin faust wiring in ``pipeline.app``."""
