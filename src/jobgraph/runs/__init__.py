"""Run drivers: one run of a job graph on a deployed stack (the embedded local cloud or AWS), followed to
its end, its results exported and its figures gathered for the report."""
