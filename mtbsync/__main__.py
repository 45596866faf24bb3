from mtbsync.cli import main

main()
