"""The master: namespace, users, slave registry, placement and the TLS server.

It never carries file data; it decides who may do what and where the bytes go,
and records the result in SQLite.
"""
