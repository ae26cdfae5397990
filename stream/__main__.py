from stream.tools.cli import main

main()
