"""edge_rap: Remember, Retrieve and Generate (RAP) as an on-device personalised visual assistant."""

import os

# onnxruntime 1.32 on Linux queues telemetry for Microsoft's collector (a device id kept in ~/.cache/Microsoft, the
# OS, the CPU, the program's path) as soon as it is imported, to be sent once the device is online: nothing of the
# household's may leave the device, so it is turned off here, before any import of it (disable_telemetry_events()
# after the import is too late); piper's process inherits it. A user who sets the variable keeps their choice.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
