"""The `taskc` command: one module per subcommand, `main` dispatches."""
