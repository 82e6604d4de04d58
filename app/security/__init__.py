"""Security: API keys (``apikeys``), the server's secret key (``keys``), outbound egress rules
(``egress``) and, later, encryption of secrets, webhook signatures and OAuth flows.

Import the submodules directly (``from app.security.apikeys import hash_api_key``); this
package imports nothing so each part stays independent.
"""
