from toolbench.cli.main import main

main()
