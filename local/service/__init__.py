"""The uploader service: the cycle (pull, unpack, ack, upload), its loop, heartbeat, health, status."""
