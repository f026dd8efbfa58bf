"""What an edge-agent device and its cloud services agree on.

This is the only code the device and the cloud share (each side otherwise knows nothing
of the other's internals):

- ``wire`` — the MQTT contract: topics, the event envelope, batches, acks, UUIDv7,
  encode/decode (prose in docs/PROTOCOL.md);
- ``config_errors`` — the contract with an operator: a configuration problem is named
  with its file (or environment variable) and field, all of them at once, exit 78;
- ``files`` — replacing a file whole (key, certificate, broker file), fsynced, with its
  final mode from the first byte.
"""
