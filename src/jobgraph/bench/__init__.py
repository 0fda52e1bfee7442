"""The performance bench: run records (run.json), the cost model and its price tables, comparisons."""
