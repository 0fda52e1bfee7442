"""Lambda event source mappings, locally: SQS pollers with batches, FIFO groups, partial batch failures and redrive; leaves out the 20 s long poll and AWS's scaling steps."""
