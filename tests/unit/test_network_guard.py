import socket

import pytest


def test_non_loopback_connections_are_refused_in_tests():
    with socket.socket() as s, pytest.raises(RuntimeError, match="only loopback"):
        s.connect(("203.0.113.7", 443))
