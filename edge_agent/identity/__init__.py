"""Who the device is to the cloud: its enrolled key and certificate.

``stored`` reads the identity in ``<state_dir>/identity/`` (files only, no
cryptography import, so loading settings stays light), ``enroll`` makes the key on the
device and enrolls or renews it with the auth service, ``renewal`` is the daemon's daily
check that renews a certificate when it is due.
"""
