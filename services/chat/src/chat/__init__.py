"""The chat service: a catalogue of language models and private chats with them."""
