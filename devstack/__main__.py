from devstack.runner.main import main

main()
