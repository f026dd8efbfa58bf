from edge_cloud.auth.cli import main

main()
