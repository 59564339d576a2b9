"""Search spaces, the architecture graph, and emitters to ONNX / TFLite / torch.

``latbench.spaces`` imports no other part of latbench.
"""

from __future__ import annotations

from latbench.spaces.base import SPACES, SearchSpace, get_space, list_spaces
from latbench.spaces.fbnet import FBNetSpace
from latbench.spaces.graph import Graph, GraphBuilder, Node, init_params, make_input
from latbench.spaces.nb201 import NB201Space

__all__ = [
    "SPACES",
    "FBNetSpace",
    "Graph",
    "GraphBuilder",
    "NB201Space",
    "Node",
    "SearchSpace",
    "get_space",
    "init_params",
    "list_spaces",
    "make_input",
]

from latbench.spaces.export import export

__all__ += ["export"]
