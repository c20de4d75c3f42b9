"""llama-server's own routes (`POST /completion`, `GET /props`) for the clients built against llama.cpp's server."""
