"""Code shared by every infrawatch service.

The contract between the services: the event envelope and union (``envelope``, ``events``,
``collected``, ``config_events``, ``alert_events``, ``payloads``), the collected data types
(``datatypes``: payload, commands and parser, table and projection of each), subject and bucket
names (``names``), errors and settings. What the services run on — connections, publishing,
bootstrap, the device registry, transports, embedded servers — is in ``shared.runtime``, which
the contract never imports (tests/test_architecture.py checks it).
"""
