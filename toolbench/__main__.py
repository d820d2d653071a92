from toolbench.cli import main

main()
