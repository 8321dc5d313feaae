"""The always-on camera daemon: capture, gate, recognise, track, announce, log."""
