"""Console screens pushed over the main views: details and help."""
