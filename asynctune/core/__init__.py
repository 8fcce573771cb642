"""The vocabulary every other package speaks: trials and decisions, the search-space DSL,
metric/mode objectives and Pareto fronts, resources and GPUs, stoppers, and the small
compatibility shims (asyncio on 3.10, logging's fallback handler)."""
