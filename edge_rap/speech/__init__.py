"""Listening and speaking: the Speaker (TTS); later voice activity detection and speech recognition."""
