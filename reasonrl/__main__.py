from reasonrl.cli import main

main()
