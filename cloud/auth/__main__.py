from cloud.auth.cli import main

main()
