"""The direct link between the API and a node serving completions (issue 18, item 3)."""
