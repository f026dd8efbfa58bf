"""The cloud side of edge-agent: the auth service (``cloud.auth``) and what services share (``cloud.common``)."""
