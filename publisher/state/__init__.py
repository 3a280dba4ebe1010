"""The state: where it is (`location`), its tables (`schema`), its engines and the differences between
SQLite and PostgreSQL (`engine`, `dialect`), its migrations (`migrate`), and checking, creating and opening
it (`statefile`). `publisher.store` reads and writes the rows of a run.
"""
