"""Load chat exports by their content: a WhatsApp .txt, a Telegram result.json, a Messenger/Instagram
message_N.json, a Signal chat.md (signal-export) or a Discord .json (DiscordChatExporter), alone, in folders or in zip
archives. `load_exports` is the package's face; `loading` reads the files and one module per format parses them."""

from replica.ingest.file_names import whatsapp_chat_name
from replica.ingest.loading import SUPPORTED, LoadResult, load_exports

__all__ = ["SUPPORTED", "LoadResult", "load_exports", "whatsapp_chat_name"]
