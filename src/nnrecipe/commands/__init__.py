"""Subcommands that live in a module of their own (cli.COMMANDS names them): HELP, DESCRIPTION,
add_arguments(parser) and run(args) -> int; heavy imports inside run."""
