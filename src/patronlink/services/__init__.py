"""Use cases. Each owns one transaction and talks to repositories and ports, never to HTTP."""
