"""``python -m edge_cloud.ingest`` = ``edge-ingest``."""

from edge_cloud.ingest.cli import main

main()
