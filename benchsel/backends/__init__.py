"""Where models are served: Ollama, any OpenAI-compatible server, or benchsel's own llama-server."""
