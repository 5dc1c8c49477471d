from taskc.main import entry

entry()
