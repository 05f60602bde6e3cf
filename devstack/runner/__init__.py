"""`make run` (`python -m devstack`, `main`) on supervisord (`supervisor`): what runs where
(`services`), the servers it starts where none answers (`servers`), each child dying with its
parent (`child`); `make ps|stop|start|kill|pause|logs|down` (`control`)."""
