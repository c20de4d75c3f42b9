"""Ollama's API (/api/*, `GET /`) on the same port and engine, for the clients that speak only it."""
