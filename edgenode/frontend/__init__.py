"""The client-facing HTTP/1.1 front end (``FrontEnd``, frontend/server.py): connections,
parsing, requests run in order through the chain, responses written."""
