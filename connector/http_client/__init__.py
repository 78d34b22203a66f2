"""The bottom HTTP layer every outbound client shares: the transport (sessions, limiters,
timeouts, tracing), the parsing of replies, the provider error tree and the retry timing.

It imports nothing from ``connector.auth`` or ``connector.providers``; both build on it.
"""
