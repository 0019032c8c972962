"""The foundation commands: db, demo, custody, serve/run, bench."""
