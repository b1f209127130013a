"""`replica serve`: an OpenAI-compatible HTTP API, a web chat (/) and a blind test (/blind) for one model."""
