"""HTTP: the FastAPI app factory and its routers. Domain errors become HTTP statuses here only."""
