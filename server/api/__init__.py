"""The OpenAI-compatible HTTP layer: request schemas, thin routes, translation to and from engine types."""
