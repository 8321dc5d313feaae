"""The device's HTTP API (`edge-rap serve`): provisioning from a companion or the household page, safe by default."""
