"""Listening and speaking: audio in, voice activity (silero VAD), whisper, names and commands heard, the replies,
and the Speaker (TTS)."""
