"""The cloud side of edge-agent: the auth service (``edge_cloud.auth``) and what services share (``edge_cloud.common``)."""
