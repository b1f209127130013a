"""Export a replica to one GGUF file (llama.cpp, Ollama, LM Studio) that keeps stopping at the end of its turn."""
