"""Routing policy as data: prefix sets, neighbour sets, import and export rules.

``model`` holds the frozen rule values (what the speaker's configuration and
the agent's translation produce); ``engine`` compiles them into C prefix sets
and evaluates them once per class of routes, never per prefix.
"""
