from pivf.cli.main import main

main()
