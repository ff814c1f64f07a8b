"""The subcommands of `vizdeconv`: each parses its flags and calls the library, nothing more."""
