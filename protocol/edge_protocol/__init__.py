"""What an edge-agent device and its cloud services agree on.

This is the only code the device and the cloud share (each side otherwise knows nothing
of the other's internals):

- ``wire`` — the MQTT contract: topics, the event envelope, batches, acks, UUIDv7,
  encode/decode (prose in docs/PROTOCOL.md).
"""
