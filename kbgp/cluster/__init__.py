"""The cluster model: where Nodes, Services and EndpointSlices come from
(``source``), their snapshot (``model``) and what this node makes of them
(``translate``)."""
