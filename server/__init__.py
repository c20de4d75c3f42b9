"""codebooga's serving side: OpenAI-compatible HTTP API over a backend-agnostic generation engine."""
