"""The browser side of the server: the playground at /ui and the API docs at /docs, every asset from the package."""
