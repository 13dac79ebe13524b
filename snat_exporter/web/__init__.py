"""The HTTP front door: everything between a TCP connection and the /metrics handler.

- ``settings``: the ``http`` config section (timeouts, caps, auth cache) and the ``auth`` choice.
- ``config``: the exporter-toolkit ``web-config.yml`` (TLS, basic auth, response headers), checked at load.
- ``tls``: server TLS contexts that follow certificate rotation on disk, and ``client_allowed_sans``.
- ``listener``: accepting connections with a cap, header and idle timeouts, and a quiet back-off on accept errors.
- ``basic`` / ``kubeauth``: the two ways a request proves who it is (basic auth; TokenReview + SubjectAccessReview).
- ``negotiation``: format and encoding of /metrics from Accept / Accept-Encoding, q-values included.
- ``door``: assembles these into aiohttp middlewares and signals for the server.
"""
