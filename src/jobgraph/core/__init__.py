"""The pure domain: models, delay model, stats, graph, stages, generator, results, reference solver.

No AWS client, no local cloud, no terminal: everything here runs the same in a Lambda, a container
worker, a state-machine task and the in-process solver."""
