from meter2cash.cli import main

main()
