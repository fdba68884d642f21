"""The surrogate-assisted NSGA-II search (MSuNAS lineage): objectives, archive, loop."""
