"""The command line: thin click commands, each one library call plus rendering."""
