from taskc.cli.main import entry

entry()
