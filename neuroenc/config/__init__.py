"""Configuration: the structured-config schemas (every default, once), the checks that span
several groups, the resolvers, and the one place that finds ``conf/`` and composes it."""
