"""The HTTP front door: everything between a TCP connection and the /metrics handler.

- ``settings``: the ``http`` config section (timeouts, caps, auth cache) and the ``auth`` choice.
- ``config``: the exporter-toolkit ``web-config.yml`` (TLS, basic auth, response headers), checked at load.
- ``tls``: server TLS contexts that follow certificate rotation on disk, and ``client_allowed_sans``.
- ``listener``: accepting connections with a cap, header and idle timeouts, and a quiet back-off on accept errors.
- ``basic`` / ``kubeauth``: the two ways a request proves who it is (basic auth; TokenReview + SubjectAccessReview),
  each answering a ``verdict`` (allowed, 401, 403, 503).
- ``negotiation``: format and encoding of /metrics from Accept / Accept-Encoding, q-values included.
- ``door``: assembles these into aiohttp middlewares and signals for the server.
- ``metrics``: the front door's self-metrics (auth outcomes, reviews, closed connections, TLS reloads).
"""
