"""The status API (seed 002/004): a FastAPI app served by Lambda through Mangum, or by uvicorn locally."""
