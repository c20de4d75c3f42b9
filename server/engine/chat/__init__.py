"""Chat on top of the engine: messages (with tools and tool results) → prompt and grammar → text and tool calls.

Both chat APIs (OpenAI's /v1/chat/completions and Ollama's /api/chat) run through `start_chat`, so a tool call
or a schema-constrained answer means the same thing whichever protocol asked for it.
"""
