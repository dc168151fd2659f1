from benchsel.cli.main import main

main()
