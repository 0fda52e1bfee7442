"""The `jobgraph` command line and its report."""
