"""Console widgets: they render snapshots built by the core and never poll."""
