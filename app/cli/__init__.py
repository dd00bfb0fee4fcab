"""The `forensight` command: `main` parses the arguments; one module per subcommand adds its parser and runs it."""
