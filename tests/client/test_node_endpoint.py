"""The client creates the other parts of a parallel upload, and its final, on the node that answered the first
creation (node-sticky --public-url, docs/deploy.md#several-nodes): ``node_endpoint``."""

from __future__ import annotations

import pytest

from tusedge.client.options import node_endpoint


@pytest.mark.parametrize(
    ("endpoint", "location", "expected"),
    [
        # Same origin: the endpoint as given (a relative or rewritten Location changes nothing).
        ("https://up.example.com/files/", "https://up.example.com/files/abc", "https://up.example.com/files/"),
        ("https://up.example.com/files/?sig=1", "https://up.example.com/files/abc", "https://up.example.com/files/?sig=1"),
        # Another origin: that node's folder of the upload, with the endpoint's query (a signature).
        ("https://up.example.com/files/", "https://fra1.example.com/files/abc", "https://fra1.example.com/files/"),
        ("https://up.example.com/files/?sig=1", "https://fra1.example.com/files/abc",
         "https://fra1.example.com/files/?sig=1"),
        ("https://up.example.com/files/", "https://edge.example.com/fra1/files/abc",
         "https://edge.example.com/fra1/files/"),
        ("http://127.0.0.1:8000/files/", "http://127.0.0.1:8001/files/abc", "http://127.0.0.1:8001/files/"),
    ],
)  # fmt: skip
def test_parts_are_created_on_the_node_that_named_itself_in_location(
    endpoint: str, location: str, expected: str
) -> None:
    assert node_endpoint(endpoint, location) == expected
