"""Starting points a person comes back to: the original notebook's experiment as data (notebook) and as a run
(reproduce), and what one person last worked on in one browser (profile). Imports the engine's rooms; never jobs or
the CLI."""
