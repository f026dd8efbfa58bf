from edge_agent.cli.app import main

main()
