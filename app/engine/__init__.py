"""The pure executor: DAG order, concurrency, retry, timeout, for_each, cancellation. No SQL, no FastAPI."""
