"""The command line: argument parsing and dispatch (`main`), the operations' terminal front end
(`operations`) and `status` output (`status_text`).

May import every layer below it; starts the console by importlib at run time only, so that a
CLI command never loads Textual. Never imported by `tui`.
"""
