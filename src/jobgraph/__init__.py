"""jobgraph: aircraft delay job graphs on AWS serverless, and locally."""
